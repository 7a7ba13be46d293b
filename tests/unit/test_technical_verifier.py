"""The weight-free technical verifier: its scores move the right way."""

import torch

from eacps.verifiers.technical import TechnicalQualityVerifier


def test_sharp_beats_blurred_and_midtones_beat_clipped():
    gen = torch.Generator().manual_seed(0)
    sharp = torch.rand(1, 64, 64, 3, generator=gen) * 0.6 + 0.2
    blurred = torch.nn.functional.avg_pool2d(sharp.permute(0, 3, 1, 2), 9, stride=1, padding=4,
                                             count_include_pad=False).permute(0, 2, 3, 1)
    white = torch.ones(1, 64, 64, 3)
    v = TechnicalQualityVerifier(size=64)
    r = v.score(torch.cat([sharp, blurred, white]), "any prompt")
    s, e = r.scores["sharpness"].tolist(), r.scores["exposure"].tolist()
    assert s[0] > s[1] > s[2] == 0.0
    assert e[0] > 8.0 and e[2] == 0.0
    assert all(0.0 <= x <= 10.0 for x in s + e)
    assert set(r.raw) == {"sharpness", "exposure"}


def test_resizing_makes_identity_and_scores_size_aware():
    assert TechnicalQualityVerifier(256).identity != TechnicalQualityVerifier(512).identity
    img = torch.rand(2, 40, 50, 3, generator=torch.Generator().manual_seed(1))
    a = TechnicalQualityVerifier(0).score(img, "")
    b = TechnicalQualityVerifier(100).score(img, "")
    assert a.scores["sharpness"].shape == b.scores["sharpness"].shape == (2,)
