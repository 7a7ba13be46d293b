"""EACPS_SaveImageWithReport: SaveImage plus the search report beside the PNG; and the partial
report + grid a search leaves behind when it stops on an error or a Cancel after sampling."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from types import SimpleNamespace

import comfy.model_management
import folder_paths
import numpy as np
from comfy.cli_args import args
from comfy_api.latest import io, ui
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..search.grid import render_grid
from ..search.pool import Pool, SearchError
from ..search.report import build_report, winner_summary

PARTIAL_PREFIX = "EACPS_partial/search"


def save_partial(pool: Pool, stopped: str) -> str:
    """Write the candidates of a search that stopped early to ComfyUI's output folder (sub-folder
    ``EACPS_partial``): ``<name>.json`` (the report, no winner, ``stopped`` = why) and
    ``<name>.png`` (the candidate grid). Returns the report's path."""
    grid = render_grid(pool, None)
    folder, filename, counter, _, _ = folder_paths.get_save_image_path(
        PARTIAL_PREFIX, folder_paths.get_output_directory(), grid.shape[2], grid.shape[1])
    stem = os.path.join(folder, f"{filename}_{counter:05}_")
    setup = pool.setup.describe() if hasattr(pool.setup, "describe") else None
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(build_report(pool, None, setup, stopped=stopped), f, indent=1, allow_nan=False)
    Image.fromarray(np.clip(255.0 * grid[0].numpy(), 0, 255).astype(np.uint8)).save(stem + ".png", compress_level=4)
    return stem + ".json"


@contextlib.contextmanager
def keep_sampled():
    """Run a search step by step with ``box.pool`` holding the latest pool. If it stops on an error
    or a Cancel with candidates sampled, they are saved (:func:`save_partial`): an error is re-raised
    as a SearchError whose message ends with the path; a Cancel stays a Cancel (the prompt ends as
    interrupted) and the path goes to the log."""
    box = SimpleNamespace(pool=None)
    try:
        yield box
    except comfy.model_management.InterruptProcessingException:
        if box.pool is not None and len(box.pool):
            path = save_partial(box.pool, "cancelled")
            logging.warning("EACPS: search cancelled; the %d candidates sampled so far are saved in %s",
                            len(box.pool), path)
        raise
    except Exception as e:
        if box.pool is None or not len(box.pool):
            raise
        path = save_partial(box.pool, f"{type(e).__name__}: {e}")
        raise SearchError(f"{e}\nThe {len(box.pool)} candidates sampled before this error are kept: report "
                          f"{path}, grid {path[:-5]}.png") from e


def _read_report(report: str) -> dict:
    try:
        data = json.loads(report)
    except (TypeError, json.JSONDecodeError) as e:
        raise SearchError(
            f"'report' is not JSON ({e}); connect the 'report' output of EACPS Elite Select / Search / Best of N"
        ) from None
    try:
        winner_summary(data)
    except ValueError as e:
        raise SearchError(str(e)) from None
    return data


class SaveImageWithReport(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_SaveImageWithReport",
            display_name="EACPS Save Image + Report",
            category="EACPS",
            description=(
                "Saves the images to ComfyUI's output folder exactly as Save Image does (the prompt and workflow "
                "in the PNG unless --disable-metadata), adds a PNG text chunk 'eacps' with the winner's seed, "
                "noise recipe, scores and sampling setup, and writes the full JSON report next to each PNG "
                "(same name, .json)."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The image(s) to save, usually the search's best image."),
                io.String.Input("report", force_input=True, tooltip="The search's JSON report."),
                io.String.Input("filename_prefix", default="EACPS",
                                tooltip="File name prefix; may hold a subfolder and %date:...% like Save Image."),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, report, filename_prefix) -> io.NodeOutput:
        data = _read_report(report)
        out_dir = folder_paths.get_output_directory()
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, out_dir, images[0].shape[1], images[0].shape[0]
        )
        metadata = None
        if not args.disable_metadata:
            metadata = PngInfo()
            if cls.hidden.prompt is not None:
                metadata.add_text("prompt", json.dumps(cls.hidden.prompt))
            if cls.hidden.extra_pnginfo is not None:
                for key, value in cls.hidden.extra_pnginfo.items():
                    metadata.add_text(key, json.dumps(value))
            metadata.add_text("eacps", json.dumps(winner_summary(data)))
        text = json.dumps(data, indent=1, allow_nan=False)
        results = []
        for batch_number, image in enumerate(images):
            img = Image.fromarray(np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8))
            stem = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_"
            img.save(os.path.join(folder, stem + ".png"), pnginfo=metadata, compress_level=4)
            with open(os.path.join(folder, stem + ".json"), "w", encoding="utf-8") as f:
                f.write(text)
            results.append(ui.SavedResult(stem + ".png", subfolder, io.FolderType.output))
            counter += 1
        return io.NodeOutput(ui=ui.SavedImages(results))


NODES = (SaveImageWithReport,)
