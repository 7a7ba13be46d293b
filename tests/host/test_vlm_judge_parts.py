"""The VLM judge's conversation, its padding guard and its load errors, on the tiny real-format
Qwen2-VL folder (tests/verifier_models.py) loaded through the loader node."""

from __future__ import annotations

import shutil

import pytest
from verifier_checks import load_verifier, make_images

from eacps.verifiers.base import VerifierError

pytestmark = pytest.mark.host


def _judge(comfy, captured, aspects: str):
    return load_verifier(comfy, captured, "EACPS_LoadVLMJudgeVerifier",
                         {"model_folder": "tiny_qwen2vl", "aspects": aspects, "max_batch": 4})


def test_the_judge_is_shown_the_reference_then_the_candidate_each_after_its_label(comfy, captured, judge_files):
    v = _judge(comfy, captured, "consistency, realism")
    assert v.identity == "vlm_judge:tiny_qwen2vl:consistency,realism"  # names its scores in reports
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    text = v._text("consistency", "make it red")
    assert text.startswith("<|im_start|>user\n")  # one user turn, as the chat template renders it
    assert text.count(image) == 2
    reference, candidate = text.index("Reference image:"), text.index("Candidate image:")
    first, second = text.index(image), text.rindex(image)
    assert reference < first < candidate < second
    alone = v._text("realism", "a red apple")
    assert alone.count(image) == 1 and alone.index("Candidate image:") < alone.index(image)
    assert "Reference image:" not in alone
    assert alone.endswith("<|im_start|>assistant\n")  # the next token is the answer digit


def test_a_processor_that_pads_on_the_right_is_refused(comfy, captured, judge_files):
    """The digit is read at the last position of every row: with right padding a shorter row's last
    position is padding. The judge pads on the left; should a processor pad on the right anyway
    (two prompts of different length in one batch), it refuses instead of reading padding."""
    v = _judge(comfy, captured, "prompt_adherence")
    tok = v.model.processor.tokenizer
    texts = [v._text("prompt_adherence", p) for p in ("red", "a red apple on a wooden table in the morning sun")]
    images = [[img.movedim(-1, 0)] for img in make_images(2, size=(32, 32))]
    assert tok.padding_side == "left"
    v.model.expected_digits(texts, images)  # left padding: fine
    assert len(tok(texts[0])["input_ids"]) < len(tok(texts[1])["input_ids"])  # so one row is padded
    tok.padding_side = "right"
    try:
        with pytest.raises(VerifierError, match=r"^VLM judge: the processor padded on the right; "
                                                r"set padding_side='left'$"):
            v.model.expected_digits(texts, images)
    finally:
        tok.padding_side = "left"


def test_a_folder_whose_model_cannot_be_loaded_names_the_judge_and_the_folder(comfy, judge_files):
    folder = judge_files / "broken_qwen2vl"
    shutil.copytree(judge_files / "tiny_qwen2vl", folder, dirs_exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    result = comfy.run({
        "load": {"class_type": "EACPS_LoadVLMJudgeVerifier",
                 "inputs": {"model_folder": "broken_qwen2vl", "aspects": "realism", "max_batch": 4}},
        "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "x"}},
    }, expect_success=False)
    assert f"VLM judge: cannot load the model from {folder}" in result.error(), result.error()


def test_the_reference_and_the_candidates_reach_the_processor_the_right_way_up(comfy, captured, judge_files):
    """The judge's raw values equal the expected digits of the same conversation built by hand: each
    picture as the [3, H, W] tensor the processor takes (permuted from ComfyUI's [H, W, 3]), the
    reference before the candidate. Pictures are not square, so a transposed one would differ."""
    import torch

    v = _judge(comfy, captured, "consistency")
    candidates, reference = make_images(2, size=(40, 56)), make_images(1, seed=9, size=(48, 64))
    got = v.score(candidates, "make it red", reference).raw["consistency"]
    text = v._text("consistency", "make it red")
    pictures = [[reference[0].permute(2, 0, 1), c.permute(2, 0, 1)] for c in candidates]
    want = v.model.expected_digits([text] * 2, pictures)
    assert torch.allclose(got, want, atol=1e-6, rtol=0), (got, want)


def test_a_picture_that_overshoots_0_1_is_judged_as_the_picture_clipped(comfy, captured, judge_files):
    """A decode can overshoot [0, 1]; the judge sees what would be saved: the picture clipped."""
    import torch

    v = _judge(comfy, captured, "realism")
    pictures = make_images(2, size=(32, 32)) * 1.5 - 0.2  # about a quarter of the values outside [0, 1]
    got = v.score(pictures, "a red apple").raw["realism"]
    assert torch.allclose(got, v.score(pictures.clamp(0, 1), "a red apple").raw["realism"], atol=1e-6, rtol=0)
