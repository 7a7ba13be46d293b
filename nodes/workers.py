"""EACPS_Workers (name the ComfyUI instances a search may use) and EACPS_WorkerSample (what a worker
runs: one sub-batch of noise recipes, results written losslessly for the searching instance).
The protocol and the scheduler are in remote.py."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace

import folder_paths
from comfy_api.latest import io

from ..search.pool import SearchError
from .checks import first_error
from .remote import (
    PACK_VERSION,
    WorkerClient,
    Workers,
    check_auth_env,
    feeding_graph,
    parse_urls,
    tasks_from_job,
    worker_results_file,
)

WorkersSocket = io.Custom("EACPS_WORKERS")
WORKER_SUBFOLDER = "eacps_worker"


def workers_input():
    return WorkersSocket.Input(
        "workers", optional=True,
        tooltip="Other ComfyUI instances (EACPS Workers) that sample a share of the candidates. Results are "
                "the same as a local run.")


def with_workers(setup, workers: Workers | None, hidden):
    """The setup with the workers attached and the feeding graph taken from ComfyUI's hidden PROMPT.
    Every worker is checked (reachable, pack present, same version) before any sampling: raises
    SearchError naming the first that fails."""
    graph = setup.graph
    if graph is None and hidden is not None and hidden.prompt is not None:
        # Kept even without workers, so a later Local Seed Refine can be given workers.
        graph = feeding_graph(hidden.prompt, hidden.unique_id)
    if workers is None:
        return replace(setup, graph=graph)
    if graph is None:
        raise SearchError("workers are connected, but the graph feeding the search is unknown (no PROMPT from "
                          "ComfyUI); connect the workers to the node that samples stage 1")
    for url in workers.urls:
        WorkerClient(url, workers.auth_env).check()
    return replace(setup, workers=workers, graph=graph)


class WorkersNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_Workers",
            display_name="EACPS Workers",
            category="EACPS",
            description=(
                "Other ComfyUI instances (one per GPU, or on other machines) that sample a share of each "
                "search stage. Each must run this pack at the same version and have the same model files "
                "as this instance: it rebuilds the loaders and conditioning that feed the search. Scoring "
                "and selection stay here. Connect to EACPS Search, Best of N, Seed Search (global) or Local "
                "Seed Refine."
            ),
            inputs=[
                io.String.Input("urls", multiline=True, default="http://127.0.0.1:8189",
                                tooltip="One ComfyUI address per line, e.g. http://192.168.1.20:8188."),
                io.String.Input("auth_env", default="",
                                tooltip="Optional: the NAME of an environment variable (on this machine) whose "
                                        "value is sent as the Authorization header. Never the secret itself."),
                io.Boolean.Input("include_local", default=True,
                                 tooltip="This instance samples a share too."),
                io.Float.Input("timeout_s", default=600.0, min=1.0, max=86400.0, step=1.0,
                               tooltip="Longest one sub-batch may take on a worker before it is retired and "
                                       "its candidates run elsewhere."),
            ],
            outputs=[WorkersSocket.Output(display_name="workers")],
        )

    @classmethod
    def validate_inputs(cls, urls=None, auth_env=None, timeout_s=None):
        return first_error(
            None if urls is None else (_check_urls, urls),
            None if auth_env is None else (check_auth_env, auth_env),
            None if timeout_s is None else (_check_timeout, timeout_s),
        )

    @classmethod
    def execute(cls, urls, auth_env, include_local, timeout_s) -> io.NodeOutput:
        check = cls.validate_inputs(urls, auth_env, timeout_s)
        if check is not True:
            raise SearchError(check)
        return io.NodeOutput(Workers(parse_urls(urls), auth_env, bool(include_local), float(timeout_s)))


def _check_urls(urls) -> None:
    if not parse_urls(urls):
        raise SearchError("urls: give at least one worker address, one per line")


def _check_timeout(value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1.0):
        raise SearchError(f"timeout_s = {value!r}: use a number of seconds >= 1")


class WorkerSample(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_WorkerSample",
            display_name="EACPS Worker Sample (sent by a search)",
            category="EACPS/advanced",
            description=(
                "Runs on a worker: samples and decodes the noise recipes a searching instance sent, and "
                "writes latents and images (float32, lossless) to this instance's temp folder for it to "
                "download. Searches add this node themselves; you do not need to place it."
            ),
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                io.Latent.Input("latent_image"),
                io.Vae.Input("vae"),
                io.String.Input("job", multiline=True, default="", tooltip="The sub-batch, as the search sends it."),
                io.String.Input("pack_version", default=PACK_VERSION,
                                tooltip="The EACPS version of the sender; must equal this instance's."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, vae, job, pack_version) -> io.NodeOutput:
        from .runner import LocalRunner, Progress
        from .sampling import make_setup

        if pack_version != PACK_VERSION:
            raise SearchError(f"this worker runs EACPS {PACK_VERSION}, the search sent {pack_version}: install the "
                              "same version on every instance")
        try:
            spec = json.loads(job)
            s = spec["sampling"]
            key, tasks = tasks_from_job(spec)
        except (ValueError, KeyError, TypeError) as e:
            raise SearchError(f"malformed job from the searching instance: {e}") from None
        setup = make_setup(model, positive, negative, latent_image, vae, s["seed"], s["steps"], s["cfg"],
                           s["sampler_name"], s["scheduler"], s["denoise"], s["max_sub_batch"])
        start, stop = key[0], key[1]
        runner = LocalRunner(setup, Progress(len(tasks) * (stop - start)))
        outcomes, ledger = runner.run_part(tasks, key, list(range(len(tasks))))
        folder = os.path.join(folder_paths.get_temp_directory(), WORKER_SUBFOLDER)
        name = worker_results_file(outcomes, ledger, folder)
        return io.NodeOutput(ui={"eacps_results": [{"filename": name, "subfolder": WORKER_SUBFOLDER, "type": "temp"}]})


NODES = (WorkersNode, WorkerSample)
