"""HPS v2 / v2.1 (Wu et al. 2023, Human Preference Score): human preference for the image given
the prompt, from an open_clip ViT-H-14 fine-tuned on HPD v2.

raw = cos(image, text) of the HPS model's normalised embeddings (what the reference code reports,
no logit scale), in [-1, 1]; real generations sit around 0.20-0.33. score = 10 * (raw - 0.15) / 0.20
clamped, i.e. 0.15 -> 0, 0.25 -> 5, 0.35 -> 10.
"""

from __future__ import annotations

from .base import Verifier, VerifierResult, linear_to_score
from .openclip import backbone

RAW_LOW, RAW_HIGH = 0.15, 0.35
DEFAULT_FILE = "HPS_v2.1_compressed.pt"
SOURCE = ("'HPS_v2.1_compressed.pt' (or 'HPS_v2_compressed.pt') from the Hugging Face repo xswu/HPSv2 "
          "(a plain {'state_dict': ...} checkpoint for open_clip ViT-H-14)")


class HPSv2Verifier(Verifier):
    kind = "hpsv2"
    aspects = ("hpsv2",)

    def __init__(self, arch: str, path: str, name: str):
        self.model = backbone(arch, path, "HPSv2 verifier")
        self._identity = f"hpsv2:{arch}:{name}"
        self.managed_models = (self.model,)

    def prompt_tokens(self, prompt):
        return self.model.prompt_tokens(prompt)

    def _score(self, images, prompt, reference) -> VerifierResult:
        raw = self.model.prompt_cosine(images, prompt)
        return VerifierResult(scores={"hpsv2": linear_to_score(raw, RAW_LOW, RAW_HIGH)}, raw={"hpsv2": raw})
