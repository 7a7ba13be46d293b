"""CLIPScore (Hessel et al. 2021): how well the image matches the prompt.

raw = 2.5 * max(cos(image, text), 0) with an open_clip model (the paper's w = 2.5), in [0, 2.5];
score = 4 * raw, i.e. 10 at cos = 1. Real image/caption pairs sit near cos 0.25-0.35 (raw ~0.6-0.9,
score ~2.5-3.5): compare candidates with each other, not with an absolute bar.
"""

from __future__ import annotations

from .base import Verifier, VerifierResult
from .openclip import backbone

SOURCE = ("an open_clip state dict (.safetensors/.bin) matching the chosen architecture, e.g. "
          "laion/CLIP-ViT-H-14-laion2B-s32B-b79K (open_clip_model.safetensors, arch ViT-H-14) or "
          "timm/vit_large_patch14_clip_224.openai (open_clip_model.safetensors, arch ViT-L-14-quickgelu)")


class ClipScoreVerifier(Verifier):
    kind = "clip_score"
    aspects = ("clip_score",)

    def __init__(self, arch: str, path: str, name: str):
        self.model = backbone(arch, path, "CLIP score verifier")
        self._identity = f"clip_score:{arch}:{name}"
        self.managed_models = (self.model,)

    def prompt_tokens(self, prompt):
        return self.model.prompt_tokens(prompt)

    def _score(self, images, prompt, reference) -> VerifierResult:
        cos = self.model.prompt_cosine(images, prompt)
        raw = 2.5 * cos.clamp(min=0.0)
        return VerifierResult(scores={"clip_score": (raw * 4.0).clamp(0.0, 10.0)}, raw={"clip_score": raw})
