"""Each verifier's raw -> [0, 10] mapping at hand-computed anchor points.

The tiny random models of the host tests give raw values that are mostly clamped or alike, so here
each mapping gets raw values chosen at its documented anchors. The model part is replaced by a
stand-in that returns those raw values (or, for the VLM judge, the next-token logits); everything
after it is the verifier's own code. Expected values are written out by hand from the docstrings
and the papers' published constants, not computed with the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch

from eacps.verifiers.aesthetic import AestheticVerifier
from eacps.verifiers.base import linear_to_score
from eacps.verifiers.clip_score import ClipScoreVerifier
from eacps.verifiers.hpsv2 import HPSv2Verifier
from eacps.verifiers.imagereward import ImageRewardModel, ImageRewardVerifier
from eacps.verifiers.pickscore import PickScoreVerifier
from eacps.verifiers.preservation import PreservationVerifier
from eacps.verifiers.technical import TechnicalQualityVerifier
from eacps.verifiers.vlm_judge import VLMJudgeVerifier, VLMModel


def images(n: int, size: int = 8) -> torch.Tensor:
    return torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(n))


def bare(cls, **attrs):
    """A verifier object without its model loading (``__init__``), carrying ``attrs``."""
    obj = cls.__new__(cls)
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj


class FixedCosine:
    """Stands in for an open_clip backbone: prompt_cosine / image_features return set values."""

    def __init__(self, values, features=None):
        self.values = torch.tensor(values, dtype=torch.float64)
        self.features = features

    def prompt_cosine(self, images, prompt):
        assert images.shape[0] == len(self.values)
        return self.values.clone()

    def image_features(self, images):
        return self.features(images)


def close(t: torch.Tensor, expected: list[float], tol: float = 1e-9) -> bool:
    return torch.allclose(t.double(), torch.tensor(expected, dtype=torch.float64), atol=tol, rtol=0)


def test_linear_to_score_anchors_and_refusals():
    raw = torch.tensor([-3.0, -2.0, 0.0, 1.0, 2.0, 5.0])
    assert close(linear_to_score(raw, -2.0, 2.0), [0.0, 0.0, 5.0, 7.5, 10.0, 10.0])
    for low, high in [(1.0, 1.0), (2.0, 1.0), (float("nan"), 1.0), (0.0, float("inf"))]:
        with pytest.raises(ValueError, match="bad mapping range"):
            linear_to_score(raw, low, high)


def test_clip_score_is_ten_times_max_cos_zero():
    # CLIPScore: raw = 2.5 * max(cos, 0); score = 4 * raw
    v = bare(ClipScoreVerifier, model=FixedCosine([1.0, 0.5, 0.25, 0.0, -0.3]), _identity="clip_score:t")
    r = v.score(images(5), "p")
    assert close(r.raw["clip_score"], [2.5, 1.25, 0.625, 0.0, 0.0])
    assert close(r.scores["clip_score"], [10.0, 5.0, 2.5, 0.0, 0.0])


def test_hpsv2_maps_0_15_to_0_and_0_35_to_10():
    v = bare(HPSv2Verifier, model=FixedCosine([0.15, 0.25, 0.35, 0.05, 0.5, 0.2]), _identity="hpsv2:t")
    r = v.score(images(6), "p")
    assert close(r.raw["hpsv2"], [0.15, 0.25, 0.35, 0.05, 0.5, 0.2])
    assert close(r.scores["hpsv2"], [0.0, 5.0, 10.0, 0.0, 10.0, 2.5])


class FixedPickScore:
    def __init__(self, values):
        self.values = torch.tensor(values, dtype=torch.float64)

    def raw(self, images, prompt):
        return self.values.clone()


def test_pickscore_maps_16_to_0_and_24_to_10():
    v = bare(PickScoreVerifier, model=FixedPickScore([16.0, 20.0, 24.0, 10.0, 30.0, 18.0]), _identity="pickscore:t")
    r = v.score(images(6), "p")
    assert close(r.raw["pickscore"], [16.0, 20.0, 24.0, 10.0, 30.0, 18.0])
    assert close(r.scores["pickscore"], [0.0, 5.0, 10.0, 0.0, 10.0, 2.5])


class _Managed:
    """The parts of verifiers.management.Managed the scoring code reads, around a plain module."""

    def __init__(self, module):
        self.module, self.device, self.dtype = module, torch.device("cpu"), torch.float32

    def load(self):
        return self.module


class _Tokenizer:
    def __call__(self, texts, **kwargs):
        n = kwargs.get("max_length", 4)
        return {"input_ids": torch.zeros(len(texts), n, dtype=torch.long),
                "attention_mask": torch.ones(len(texts), n, dtype=torch.long)}


# ImageReward's published normalisation (ImageReward/ImageReward.py: mean 0.16717362830052426,
# std 1.0333394966054072): raw = (reward - mean) / std; score = 10 * (raw + 2) / 4.
IR_MEAN, IR_STD = 0.16717362830052426, 1.0333394966054072


def test_imagereward_z_score_and_mapping():
    rewards = torch.tensor([IR_MEAN, IR_MEAN + IR_STD, IR_MEAN - 2 * IR_STD, IR_MEAN + 3 * IR_STD, IR_MEAN - IR_STD])

    def reward_model(pixels, input_ids, attention_mask):
        assert pixels.shape[0] == input_ids.shape[0] == attention_mask.shape[0] == len(rewards)
        return rewards.float()

    model = bare(ImageRewardModel, managed=_Managed(reward_model), tokenizer=_Tokenizer(), size=(16, 16))
    v = bare(ImageRewardVerifier, model=model, _identity="imagereward:t")
    r = v.score(images(5), "p")
    assert close(r.raw["imagereward"], [0.0, 1.0, -2.0, 3.0, -1.0], tol=1e-6)
    assert close(r.scores["imagereward"], [5.0, 7.5, 0.0, 10.0, 2.5], tol=1e-5)


def test_aesthetic_is_the_head_output_clamped():
    raw = [-1.0, 0.0, 5.5, 10.0, 12.0]

    def features(imgs):
        return torch.tensor(raw, dtype=torch.float32)[: imgs.shape[0], None]

    head = _Managed(torch.nn.Identity())
    v = bare(AestheticVerifier, clip=FixedCosine([], features), head=head, _identity="aesthetic:t")
    r = v.score(images(5), "ignored")
    assert close(r.raw["aesthetic"], raw)
    assert close(r.scores["aesthetic"], [0.0, 0.0, 5.5, 10.0, 10.0])


# ---- VLM judge: raw = expected digit under p restricted to the ten digit tokens; score = raw * 10 / 9
DIGIT_IDS = list(range(20, 30))  # the digit tokens sit at ids 20..29 of a 40-token vocabulary


class _Processor:
    def __init__(self):
        self.tokenizer = type("Tok", (), {"padding_side": "left"})()

    def apply_chat_template(self, messages, **kwargs):
        return "text"

    def __call__(self, text, images, **kwargs):
        n = len(text)
        return {"input_ids": torch.zeros(n, 3, dtype=torch.long), "attention_mask": torch.ones(n, 3, dtype=torch.long)}


class _Logits:
    """The judge model: returns, for image i of each call, the i-th row of ``rows`` (over the whole
    run, in call order) as the last position's logits."""

    def __init__(self, rows):
        self.rows, self.calls = rows, []

    def __call__(self, input_ids, attention_mask):
        n = input_ids.shape[0]
        start = sum(self.calls)
        self.calls.append(n)
        logits = torch.zeros(n, 3, 40)
        logits[:, -1, :] = self.rows[start:start + n]
        return type("Out", (), {"logits": logits})()


def digit_logits(**by_digit) -> torch.Tensor:
    """Logits over the 40 tokens: -inf-like everywhere except the given digits."""
    row = torch.full((40,), -1e4)
    for d, value in by_digit.items():
        row[DIGIT_IDS[int(d[1:])]] = value
    return row


def test_vlm_judge_expected_digit_and_mapping():
    rows = torch.stack([
        digit_logits(d9=0.0),  # certain 9 -> raw 9 -> 10
        torch.cat([torch.full((20,), -1e4), torch.zeros(10), torch.full((10,), -1e4)]),  # uniform -> 4.5 -> 5
        digit_logits(d3=0.0, d5=0.0),  # 3 or 5, even odds -> 4
        digit_logits(d0=0.0),  # certain 0 -> 0
        digit_logits(d0=math.log(3.0), d6=0.0),  # p(0) = 3/4, p(6) = 1/4 -> 1.5
    ])
    rows[:, 5] = 50.0  # a non-digit token with the highest logit must not count
    logits = _Logits(rows)
    model = bare(VLMModel, processor=_Processor(), managed=_Managed(logits), digit_ids=torch.tensor(DIGIT_IDS))
    v = bare(VLMJudgeVerifier, model=model, aspects=("realism",), max_batch=2, _identity="vlm_judge:t",
             uses_reference=False, requires_reference=False)
    r = v.score(images(5), "p")
    assert logits.calls == [2, 2, 1]  # max_batch images per forward pass
    assert close(r.raw["realism"], [9.0, 4.5, 4.0, 0.0, 1.5], tol=1e-5)
    assert close(r.scores["realism"], [10.0, 5.0, 40 / 9, 0.0, 15 / 9], tol=1e-5)


# ---- technical: hand-built images with a known Laplacian variance and exposure


def checkerboard(amplitude: float, mean: float = 0.5, size: int = 16) -> torch.Tensor:
    """Grey [1, size, size, 3], luminance mean +- amplitude in a checkerboard. Its 3x3 Laplacian is
    -8 * (+-amplitude) at each of the (size - 2)^2 inner pixels, half of each sign, so the (unbiased)
    variance is 64 * amplitude^2 * n / (n - 1) with n = (size - 2)^2."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    sign = ((x + y) % 2 * 2 - 1).double()
    return (mean + amplitude * sign)[None, :, :, None].expand(1, size, size, 3).clone()


def test_technical_sharpness_anchors():
    # raw = log10(variance) = -3 -> 5, -5 -> 0, -1 -> 10, -2 -> 7.5 (16 px: n = 196 inner pixels)
    amps = [math.sqrt(10 ** e / 64 * 195 / 196) for e in (-3, -5, -1, -2)]
    v = TechnicalQualityVerifier(size=0)
    r = v.score(torch.cat([checkerboard(a) for a in amps]).float(), "")
    assert close(r.raw["sharpness"], [-3.0, -5.0, -1.0, -2.0], tol=1e-4)
    assert close(r.scores["sharpness"], [5.0, 0.0, 10.0, 7.5], tol=1e-3)
    flat = v.score(torch.full((1, 16, 16, 3), 0.5), "")
    assert flat.scores["sharpness"].item() == 0.0
    assert flat.raw["sharpness"].item() == pytest.approx(-12.0)  # log10(0 + 1e-12): finite for a flat picture


def test_technical_exposure_anchors():
    v = TechnicalQualityVerifier(size=0)
    mid = checkerboard(0.01)  # all unclipped, mean 0.5 -> 1 -> 10
    bright = checkerboard(0.01, mean=0.75)  # unclipped, balance 1 - 2 * 0.25 -> 0.5 -> 5
    half = checkerboard(0.5)  # pixels at 0 and 1: all clipped -> 0
    quarter = torch.full((1, 16, 16, 3), 0.5)
    quarter[:, :8] = 1.0  # half the pixels clipped, mean 0.75 -> 0.5 * 0.5 -> 2.5
    r = v.score(torch.cat([mid, bright, half, quarter]).float(), "")
    assert close(r.raw["exposure"], [1.0, 0.5, 0.0, 0.25], tol=1e-6)
    assert close(r.scores["exposure"], [10.0, 5.0, 0.0, 2.5], tol=1e-5)


# ---- preservation: 10 * clamp((1 - w) cos + w SSIM, 0, 1)


def test_preservation_ssim_of_two_flat_images():
    # SSIM of flat images mu_a = 0.5, mu_b = 0.25 (no variance): (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1),
    # C1 = 0.01^2 -> 0.2501 / 0.3126
    v = bare(PreservationVerifier, aspects=("identity",), ssim_weight=1.0, model=None,
             _identity="preservation:t")
    a = torch.full((2, 24, 24, 3), 0.5)
    a[1] = 0.25
    ref = torch.full((1, 24, 24, 3), 0.25)
    r = v.score(a, "p", ref)
    assert close(r.raw["identity"], [0.2501 / 0.3126, 1.0], tol=1e-4)
    assert close(r.scores["identity"], [2.501 / 0.3126, 10.0], tol=1e-4)


def test_preservation_mixes_cosine_and_ssim_by_weight():
    def features(imgs):
        # the reference (all 0.25) embeds as (1, 0); candidates as unit vectors with cos 0.6 and -1
        if imgs.shape[0] == 1:
            return torch.tensor([[1.0, 0.0]])
        return torch.tensor([[0.6, 0.8], [-1.0, 0.0]])

    ref = torch.full((1, 24, 24, 3), 0.25)
    cands = ref.expand(2, -1, -1, -1).clone()  # identical pictures: SSIM 1
    v = bare(PreservationVerifier, aspects=("preservation",), ssim_weight=0.25, model=FixedCosine([], features),
             _identity="preservation:t")
    r = v.score(cands, "p", ref)
    # 0.75 * 0.6 + 0.25 * 1 = 0.7; 0.75 * -1 + 0.25 = -0.5 -> clamped to 0
    assert close(r.raw["preservation"], [0.7, -0.5], tol=1e-4)
    assert close(r.scores["preservation"], [7.0, 0.0], tol=1e-3)
