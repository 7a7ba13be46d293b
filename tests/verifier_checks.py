"""What every verifier must satisfy, checked on the verifier object a loader node produced."""

from __future__ import annotations

import torch


def make_images(n: int, size=(40, 56), seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    base = torch.rand(n, h // 4, w // 4, 3, generator=gen)
    # smooth-ish pictures (so SSIM and resizing see structure), plus a little noise
    up = torch.nn.functional.interpolate(base.movedim(-1, 1), size=(h, w), mode="bilinear").movedim(1, -1)
    return (up + 0.05 * torch.rand(n, h, w, 3, generator=gen)).clamp(0, 1)


def load_verifier(comfy, captured, class_type: str, inputs: dict, key: str = "verifier"):
    comfy.run({
        "load": {"class_type": class_type, "inputs": inputs},
        "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": key}},
    })
    return captured[key]


def check_verifier(verifier, images, prompt, reference=None, expect_patchers=True):
    """Finite, in [0, 10], deterministic, batch-independent (1e-4), and the verifier's
    ModelPatcher(s) are among ComfyUI's loaded models while its modules (every leaf layer) run."""
    from eacps.verifiers import management

    seen: list[bool] = []
    handles = []
    patchers = list(getattr(verifier, "patchers", []))
    assert bool(patchers) == expect_patchers, patchers
    for patcher in patchers:
        for leaf in (m for m in patcher.model.modules() if not any(m.children())):
            handles.append(leaf.register_forward_pre_hook(
                lambda module, args, p=patcher: seen.append(management.is_loaded(p))))
    try:
        first = verifier.score(images, prompt, reference)
        second = verifier.score(images, prompt, reference)
        singles = [verifier.score(images[i:i + 1], prompt, reference) for i in range(images.shape[0])]
    finally:
        for h in handles:
            h.remove()
    if expect_patchers:
        assert seen and all(seen), "a verifier module ran while its ModelPatcher was not loaded by ComfyUI"
    for aspect in verifier.aspects:
        s = first.scores[aspect]
        assert s.shape == (images.shape[0],)
        assert torch.isfinite(s).all() and (s >= 0).all() and (s <= 10).all(), s
        assert torch.equal(s, second.scores[aspect]), "not deterministic run to run"
        alone = torch.cat([r.scores[aspect] for r in singles])
        assert torch.allclose(alone, s, atol=1e-4, rtol=0), (aspect, alone, s)
        raw_alone = torch.cat([r.raw[aspect] for r in singles])
        assert torch.allclose(raw_alone, first.raw[aspect], atol=1e-4, rtol=0)
    return first
