"""Run one search's sub-batches on several ComfyUI instances (workers) over ComfyUI's own HTTP API.

Who sends what to whom (one stage of a search):

    searching instance                                   worker (stock ComfyUI + this pack)
    ------------------                                   ----------------------------------
    GET  /object_info/EACPS_WorkerSample  ------------>  (pack present? same version?)   [once]
    POST /prompt  {the part of the user's graph that
                   feeds the search + one
                   EACPS_WorkerSample node with the
                   sub-batch: noise recipes, step
                   range, saved latents}  ------------->  runs it with the local runner (same
                                                          sampler call), writes latents, images
                                                          (float32) and the counted cost as one
                                                          .safetensors file in its temp folder
    GET  /history/<prompt_id>  (polled)  <------------   status, and the file's name
    GET  /view?type=temp&...   <------------------------  the file, byte for byte (lossless)
    POST /interrupt {prompt_id} + /queue {delete}  ---->  only when the user cancels

Scoring and selection stay on the searching instance. A stage's candidates are cut into the same
sub-batches a local run uses (``setup.sub_batch``), and each sub-batch runs whole on one instance,
so every candidate is computed in the very batch it would be computed in locally: the results are
identical to a local run on the same kind of device. Sub-batches are handed out from one queue:
an instance that finishes takes the next, so work follows each instance's measured speed.

Faults: a worker that is unreachable, lacks the pack or runs another version of it is refused
before any sampling. A worker that fails or times out mid-search is retired for the rest of the
stage and its sub-batch goes back to the queue (run by another worker or locally). Every request
has a timeout, every sub-batch at most ``MAX_ATTEMPTS`` tries; nothing loops unbounded.
"""

from __future__ import annotations

import base64
import collections
import copy
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import requests
import safetensors.torch
import torch

from ..search.budget import Ledger
from ..search.noise import NoiseRecipe
from ..search.pool import SearchError
from ..search.stage import Outcome, Task
from .runner import LocalRunner

# The pack's version (pyproject.toml's; a test keeps them equal). Workers must run the same one.
PACK_VERSION = "0.1.0"
WORKER_NODE = "EACPS_WorkerSample"
FEEDING_INPUTS = ("model", "positive", "negative", "latent_image", "vae")
MAX_ATTEMPTS = 3  # tries per sub-batch on workers before the search gives up (the local share always may)
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.05
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class WorkerFailure(RuntimeError):
    """A worker could not run a sub-batch (unreachable, timed out, or its prompt failed)."""


class Cancelled(RuntimeError):
    """The user cancelled the search while a worker was busy."""


@dataclass(frozen=True)
class Workers:
    """The instances a search may use. Holds no secret: ``auth_env`` names the environment
    variable whose value is sent as the ``Authorization`` header, read at request time.

    urls: base addresses such as ``http://127.0.0.1:8189`` (no trailing slash).
    include_local: whether the searching instance samples a share itself.
    timeout_s: the longest one sub-batch may take on a worker before it is retired.
    """

    urls: tuple[str, ...]
    auth_env: str = ""
    include_local: bool = True
    timeout_s: float = 600.0

    def describe(self) -> dict:
        return {"urls": list(self.urls), "include_local": self.include_local, "timeout_s": self.timeout_s,
                "auth_env": self.auth_env or None}


def parse_urls(text: str) -> tuple[str, ...]:
    """One address per line ('#' starts a comment); each must be http(s)://host[:port][/path].

    Raises SearchError naming the bad line."""
    urls: list[str] = []
    for n, line in enumerate(str(text).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = urlsplit(line)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SearchError(
                f"workers line {n}: {line!r} is not an address like http://192.168.1.20:8188 "
                "(scheme http or https, then host and port)"
            )
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise SearchError(f"workers line {n}: {line!r} has a bad port") from None
        url = line.rstrip("/")
        if url in urls:
            raise SearchError(f"workers line {n}: {url} is listed twice")
        urls.append(url)
    return tuple(urls)


def check_auth_env(name: str) -> None:
    if name and not _ENV_NAME.match(name):
        raise SearchError(
            f"auth_env = {name!r}: give the NAME of an environment variable (letters, digits, _), "
            "not the secret itself"
        )


# ---- the part of the user's graph that feeds the search -------------------------------------
@dataclass(frozen=True)
class FeedingGraph:
    """The API-format nodes that the search node's sampling inputs depend on, and those inputs'
    links ([node id, output index]), taken from ComfyUI's hidden PROMPT."""

    nodes: dict
    links: dict

    def with_worker_node(self, job: dict) -> tuple[dict, str]:
        prompt = copy.deepcopy(self.nodes)
        node_id = "eacps_worker_sample"
        while node_id in prompt:
            node_id += "_"
        prompt[node_id] = {"class_type": WORKER_NODE,
                           "inputs": {**copy.deepcopy(self.links), "job": job_text(job),
                                      "pack_version": PACK_VERSION}}
        return prompt, node_id


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def feeding_graph(prompt: dict, node_id: str, inputs=FEEDING_INPUTS) -> FeedingGraph:
    """The sub-graph of an API-format ``prompt`` that feeds ``inputs`` of node ``node_id``.

    Raises SearchError if the node or an input's link is missing (the graph cannot be rebuilt on a
    worker)."""
    if not isinstance(prompt, dict) or str(node_id) not in prompt:
        raise SearchError("the search node could not see its own graph (no PROMPT from ComfyUI), so it "
                          "cannot send work to workers")
    node = prompt[str(node_id)]
    links, todo, keep = {}, [], {}
    for name in inputs:
        value = node.get("inputs", {}).get(name)
        if not _is_link(value):
            raise SearchError(f"input '{name}' of the search node is not connected; workers rebuild it from the graph")
        links[name] = list(value)
        todo.append(value[0])
    while todo:
        nid = todo.pop()
        if nid in keep:
            continue
        if nid not in prompt:
            raise SearchError(f"the graph names node {nid}, which is not in it")
        keep[nid] = copy.deepcopy(prompt[nid])
        todo.extend(v[0] for v in keep[nid].get("inputs", {}).values() if _is_link(v))
    return FeedingGraph(nodes=keep, links=links)


# ---- the job a worker runs --------------------------------------------------------------------
def job_for(setup, key: tuple, tasks: list[Task]) -> dict:
    """One sub-batch as JSON: the sampling settings, the step range and decode, the recipes, and
    (for a chain continued from step start > 0) the saved latents, as base64 safetensors."""
    start, stop, steps, decode = key
    job = {
        "version": PACK_VERSION,
        "sampling": {"seed": setup.seed, "steps": setup.steps, "cfg": setup.cfg, "sampler_name": setup.sampler_name,
                     "scheduler": setup.scheduler, "denoise": setup.denoise,
                     "max_sub_batch": setup.max_sub_batch},
        "range": {"start": start, "stop": stop, "steps": steps, "decode": decode},
        "recipes": [t.recipe.to_dict() for t in tasks],
    }
    if start:
        blob = safetensors.torch.save({"states": torch.cat([t.state for t in tasks]).contiguous()})
        job["states"] = base64.b64encode(blob).decode("ascii")
    return job


def tasks_from_job(job: dict) -> tuple[tuple, list[Task]]:
    """The worker's side of job_for: the step-range key and the Tasks."""
    r = job["range"]
    key = (int(r["start"]), int(r["stop"]), int(r["steps"]), str(r["decode"]))
    recipes = [NoiseRecipe.from_dict(d) for d in job["recipes"]]
    states = [None] * len(recipes)
    if key[0]:
        stacked = safetensors.torch.load(base64.b64decode(job["states"]))["states"]
        states = [stacked[i:i + 1] for i in range(len(recipes))]
    return key, [Task(rec, key[0], key[1], key[2], state=st, decode=key[3]) for rec, st in zip(recipes, states,
                                                                                                 strict=True)]


def job_text(job: dict) -> str:
    return json.dumps(job, sort_keys=True)


# ---- one worker over HTTP ---------------------------------------------------------------------
class WorkerClient:
    """ComfyUI's HTTP API on one worker: check, submit, wait, fetch, interrupt. Every request has
    a timeout; the secret in ``auth_env`` is read when a request is made and never stored."""

    def __init__(self, url: str, auth_env: str = ""):
        self.url = url
        self.auth_env = auth_env
        self.session = requests.Session()
        self.session.trust_env = False  # talk to exactly the address the user gave, no proxy

    def _headers(self) -> dict:
        if not self.auth_env:
            return {}
        value = os.environ.get(self.auth_env)
        if value is None:
            raise SearchError(f"the environment variable {self.auth_env} (auth_env of the Workers node) is not set")
        return {"Authorization": value}

    def _request(self, method: str, path: str, read_timeout: float = READ_TIMEOUT_S, **kwargs):
        try:
            r = self.session.request(method, self.url + path, headers=self._headers(),
                                     timeout=(CONNECT_TIMEOUT_S, read_timeout), **kwargs)
        except requests.RequestException as e:
            raise WorkerFailure(f"{self.url} did not answer {method} {path}: {type(e).__name__}: {e}") from None
        if r.status_code in (401, 403):
            raise WorkerFailure(f"{self.url} refused {method} {path} ({r.status_code}): check the header in "
                                f"${self.auth_env or '(no auth_env set)'}")
        return r

    def check(self) -> None:
        """Raise SearchError unless the worker answers and runs this pack at our version."""
        try:
            r = self._request("GET", f"/object_info/{WORKER_NODE}", read_timeout=CONNECT_TIMEOUT_S * 2)
        except WorkerFailure as e:
            raise SearchError(f"worker {e}; start it (python main.py --listen ... --port ...) or remove it "
                              "from the Workers node") from None
        info = r.json() if r.ok else {}
        if WORKER_NODE not in info:
            raise SearchError(f"worker {self.url} answers but has no EACPS pack (no {WORKER_NODE} node): install "
                              f"the pack there, version {PACK_VERSION}")
        theirs = info[WORKER_NODE].get("input", {}).get("required", {}).get("pack_version", [None, {}])[1]
        theirs = theirs.get("default") if isinstance(theirs, dict) else None
        if theirs != PACK_VERSION:
            raise SearchError(f"worker {self.url} runs EACPS {theirs}, this instance {PACK_VERSION}: install the "
                              "same version on every instance")

    def run(self, prompt: dict, node_id: str, timeout_s: float, stop: threading.Event) -> dict:
        """Queue ``prompt``, wait for it, and return the worker node's tensors and metadata."""
        r = self._request("POST", "/prompt", json={"prompt": prompt, "client_id": f"eacps-{uuid.uuid4()}"})
        if not r.ok:
            raise WorkerFailure(f"{self.url} refused the sub-batch's prompt ({r.status_code}): {r.text[:800]}")
        prompt_id = r.json()["prompt_id"]
        deadline = time.monotonic() + timeout_s
        try:
            entry = self._wait(prompt_id, deadline, stop)
        except BaseException:
            self.cancel(prompt_id)
            raise
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            raise WorkerFailure(f"{self.url}: the sub-batch failed there: {_error_text(status)}")
        try:
            ref = entry["outputs"][node_id]["eacps_results"][0]
        except (KeyError, IndexError, TypeError):
            raise WorkerFailure(f"{self.url}: the sub-batch finished without its results file") from None
        f = self._request("GET", "/view", params={"filename": ref["filename"], "subfolder": ref["subfolder"],
                                                  "type": ref["type"]})
        if not f.ok:
            raise WorkerFailure(f"{self.url}: could not download the results ({f.status_code})")
        tensors = safetensors.torch.load(f.content)
        meta = _safetensors_metadata(f.content)
        return {"tensors": tensors, "meta": meta}

    def _wait(self, prompt_id: str, deadline: float, stop: threading.Event) -> dict:
        while True:
            if stop.is_set():
                raise Cancelled()
            if time.monotonic() > deadline:
                raise WorkerFailure(f"{self.url}: the sub-batch took longer than the workers' timeout")
            history = self._request("GET", f"/history/{prompt_id}").json()
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            stop.wait(POLL_INTERVAL_S)

    def cancel(self, prompt_id: str) -> None:
        """Best effort: interrupt the job if it runs, drop it if it is queued. A worker that is gone
        cannot be cancelled; that is not an error of the search."""
        for method, path, body in (("POST", "/queue", {"delete": [prompt_id]}),
                                   ("POST", "/interrupt", {"prompt_id": prompt_id})):
            try:
                self._request(method, path, read_timeout=CONNECT_TIMEOUT_S, json=body)
            except WorkerFailure:
                return


def _error_text(status: dict) -> str:
    for kind, data in status.get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_message', '').strip()}"
        if kind == "execution_interrupted":
            return "interrupted on the worker"
    return str(status.get("status_str"))


def _safetensors_metadata(blob: bytes) -> dict:
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n]).get("__metadata__", {})


# ---- the scheduler -----------------------------------------------------------------------------
@dataclass
class _Done:
    index: int
    result: tuple | None  # (outcomes, ledger)
    instance: str
    error: str | None = None


class RemoteRunner(LocalRunner):
    """A runner (search/stage.py) that spreads its sub-batches over ``setup.workers`` and, with
    ``include_local``, this instance. The sub-batches are LocalRunner's, each runs whole on one
    instance, so every Outcome equals the local one on the same kind of device."""

    def run(self, tasks: list[Task]) -> tuple[list[Outcome], Ledger]:
        parts = self.sub_batches(tasks)
        jobs = [(key, [tasks[i] for i in part]) for key, part in parts]
        import comfy.model_management

        try:
            results = run_distributed(self.setup, jobs, lambda key, chunk: self._chunk(chunk, *key), self.progress,
                                      comfy.model_management.processing_interrupted)
        except Cancelled:
            comfy.model_management.throw_exception_if_processing_interrupted()  # ends the prompt as interrupted
            raise
        return self.gather(tasks, parts, results)


def make_runner(setup, progress=None) -> LocalRunner:
    """The runner for ``setup``: RemoteRunner when workers are attached, else LocalRunner."""
    return (RemoteRunner if setup.workers is not None else LocalRunner)(setup, progress)


def gives_up(tries: int, include_local: bool) -> bool:
    """Whether a sub-batch that failed on ``tries`` workers fails the search: after MAX_ATTEMPTS
    tries, unless the searching instance takes a share (it runs the sub-batch itself)."""
    return tries >= MAX_ATTEMPTS and not include_local


def run_distributed(setup, jobs: list[tuple[tuple, list[Task]]], run_local, progress, is_interrupted) -> list[tuple]:
    """Run each (key, tasks) sub-batch on a worker or (with ``include_local``) here; returns one
    (outcomes, ledger) per job, in order, each Outcome with ``ran_on`` set.

    run_local(key, tasks) samples one sub-batch here (with progress); is_interrupted() tells when
    the user cancelled (raises Cancelled). Raises SearchError when no instance is left to run a
    sub-batch, naming every worker's failure."""
    workers: Workers = setup.workers
    graph: FeedingGraph = setup.graph
    queue_ = collections.deque(enumerate(jobs))
    attempts = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()
    finished: queue.Queue[_Done] = queue.Queue()
    failures: list[str] = []

    def remote_loop(client: WorkerClient) -> None:
        while not stop.is_set():
            with lock:
                if not queue_:
                    return
                index, (key, tasks) = queue_.popleft()
                attempts[index] += 1
            prompt, node_id = graph.with_worker_node(job_for(setup, key, tasks))
            t0 = time.perf_counter()
            try:
                out = client.run(prompt, node_id, workers.timeout_s, stop)
                result = _unpack(out, len(tasks), time.perf_counter() - t0, client.url)
            except Cancelled:
                return
            except (WorkerFailure, SearchError, ValueError, KeyError) as e:
                with lock:
                    queue_.appendleft((index, (key, tasks)))
                finished.put(_Done(index, None, client.url, error=str(e)))
                return  # retired for the rest of this run
            finished.put(_Done(index, result, client.url))

    threads = [threading.Thread(target=remote_loop, args=(WorkerClient(url, workers.auth_env),),
                                name=f"eacps-worker-{url}", daemon=True) for url in workers.urls]
    for t in threads:
        t.start()
    done: dict[int, tuple] = {}
    try:
        while len(done) < len(jobs):
            if is_interrupted():
                raise Cancelled()
            _drain(finished, done, failures, progress)
            with lock:
                for index, _ in queue_:
                    if gives_up(attempts[index], workers.include_local):
                        raise SearchError(f"sub-batch {index} failed on {MAX_ATTEMPTS} tries: " + "; ".join(failures))
                local = workers.include_local and bool(queue_)
                if local:
                    index, (key, tasks) = queue_.popleft()
                    attempts[index] += 1
            if local:
                outcomes, ledger = run_local(key, tasks)
                done[index] = ([replace(o, ran_on="local") for o in outcomes], ledger)
                continue
            if not any(t.is_alive() for t in threads) and finished.empty() and len(done) < len(jobs):
                raise SearchError("no instance is left to run the search's remaining sub-batches: "
                                  + "; ".join(failures or ["every worker stopped"])
                                  + ". Fix the workers, or turn include_local on to run the rest here.")
            try:
                _apply(finished.get(timeout=POLL_INTERVAL_S), done, failures, progress)
            except queue.Empty:
                pass
    finally:
        stop.set()  # on Cancel or error: workers interrupt their jobs and stop taking new ones
        for t in threads:
            t.join(timeout=CONNECT_TIMEOUT_S * 3)
    return [done[i] for i in range(len(jobs))]


def _drain(finished, done, failures, progress) -> None:
    while True:
        try:
            _apply(finished.get_nowait(), done, failures, progress)
        except queue.Empty:
            return


def _apply(item: _Done, done: dict, failures: list, progress) -> None:
    if item.result is None:
        logging.warning("EACPS: worker %s retired for this stage, its sub-batch runs elsewhere: %s",
                        item.instance, item.error)
        failures.append(item.error)
        return
    done[item.index] = item.result
    progress.done += int(item.result[1].steps)
    progress.update(progress.done)


def _unpack(out: dict, n: int, round_trip: float, url: str) -> tuple[list[Outcome], Ledger]:
    tensors, meta = out["tensors"], out["meta"]
    states, images = tensors["states"], tensors.get("images")
    if states.shape[0] != n or (images is not None and images.shape[0] != n):
        raise WorkerFailure(f"{url} returned {states.shape[0]} results for {n} candidates")
    info = json.loads(meta["outcomes"])
    ledger = Ledger(**json.loads(meta["ledger"]))
    outcomes = [
        Outcome(state=states[i:i + 1].clone(), image=None if images is None else images[i:i + 1].clone(),
                nfe=float(info[i]["nfe"]),
                seconds=tuple((k, float(v)) for k, v in info[i]["seconds"]) + (("round_trip", round_trip / n),),
                invalid=info[i].get("invalid"), ran_on=url)
        for i in range(n)
    ]
    return outcomes, ledger


def worker_results_file(outcomes: list[Outcome], ledger: Ledger, folder: str) -> str:
    """Write a worker's sub-batch to ``folder`` as one safetensors file (states [n, ...] and, when
    decoded, images [n, H, W, 3], float32 CPU, as computed; outcomes' NFE, seconds and invalid
    reason and the ledger as JSON metadata); returns its file name."""
    os.makedirs(folder, exist_ok=True)
    name = f"eacps_{uuid.uuid4().hex}.safetensors"
    tensors = {"states": torch.cat([o.state for o in outcomes]).contiguous()}
    if outcomes[0].image is not None:
        tensors["images"] = torch.cat([o.image for o in outcomes]).contiguous()
    fields = {f: getattr(ledger, f) for f in ledger.__dataclass_fields__}
    meta = {"version": PACK_VERSION, "ledger": json.dumps(fields),
            "outcomes": json.dumps([{"nfe": o.nfe, "seconds": list(o.seconds), "invalid": o.invalid}
                                    for o in outcomes])}
    safetensors.torch.save_file(tensors, os.path.join(folder, name), metadata=meta)
    return name
