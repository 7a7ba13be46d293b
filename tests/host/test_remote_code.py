"""No verifier runs code shipped in a model folder (issue: never trust_remote_code). Each HF-folder
verifier gets a copy of its tiny folder whose config.json and tokenizer_config.json point
transformers at a Python file in the folder (auto_map, as custom-code models on the Hub do); that
file, if ever imported, leaves a marker. Loading through the loader node may fail or succeed with
the library's own classes, but the file never runs."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.host

# transformers copies such a file into its modules cache before importing it: the marker's path is
# written into the code
CODE = '''import pathlib
pathlib.Path({marker!r}).write_text("remote code ran")
raise ImportError("remote code ran")
'''
AUTO_MAP = {"AutoConfig": "evil_code.EvilConfig", "AutoModel": "evil_code.EvilModel",
            "AutoModelForImageTextToText": "evil_code.EvilModel", "AutoProcessor": "evil_code.EvilProcessor",
            "AutoImageProcessor": "evil_code.EvilImageProcessor",
            "AutoTokenizer": ["evil_code.EvilTokenizer", "evil_code.EvilTokenizer"]}

CASES = {
    "imagereward": ("tiny_imagereward", "EACPS_LoadImageRewardVerifier",
                    lambda f: {"model_folder": f, "checkpoint": "ImageReward.pt", "download": False}),
    "pickscore": ("tiny_pickscore", "EACPS_LoadPickScoreVerifier", lambda f: {"model_folder": f}),
    "vlm_judge": ("tiny_qwen2vl", "EACPS_LoadVLMJudgeVerifier",
                  lambda f: {"model_folder": f, "aspects": "realism", "max_batch": 2}),
    "dinov2": ("tiny_dinov2", "EACPS_LoadPreservationVerifier",
               lambda f: {"aspect": "identity", "backbone": "dinov2", "dinov2_folder": f, "clip_arch": "x",
                          "clip_weights": "x", "ssim_weight": 0.5}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_code_in_a_model_folder_never_runs(comfy, preference_files, judge_files, case):
    source, class_type, inputs = CASES[case]
    folder = preference_files / f"remote_code_{case}"
    shutil.copytree(preference_files / source, folder)
    marker = preference_files / f"RAN_{case}"
    (folder / "evil_code.py").write_text(CODE.format(marker=str(marker)))
    for name in ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json"):
        path = folder / name
        data = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**data, "auto_map": AUTO_MAP}))
    try:
        result = comfy.run({"load": {"class_type": class_type, "inputs": inputs(folder.name)},
                   "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": case}}},
                  expect_success=False)
        assert not marker.exists(), f"{case}: the folder's Python file ran ({result.status_messages})"
    finally:
        shutil.rmtree(folder)
        marker.unlink(missing_ok=True)
