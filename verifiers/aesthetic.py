"""LAION improved aesthetic predictor (Schuhmann, "sac+logos+ava1-l14-linearMSE"): how good the
image looks, independent of the prompt.

An MLP on the L2-normalised open_clip ViT-L-14 (OpenAI) image embedding, trained on SAC + LAION-Logos
+ AVA ratings (1..10). raw = the predictor's output (~1..10; typical photos 4-7);
score = raw clamped to [0, 10].
"""

from __future__ import annotations

import os

import torch
from torch import nn

from . import management
from .base import Verifier, VerifierError, VerifierResult
from .openclip import backbone
from .weights import load_state_dict, load_strict

HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
HEAD_SOURCE = ("the LAION improved aesthetic predictor head 'sac+logos+ava1-l14-linearMSE.pth' from "
               "christophschuhmann/improved-aesthetic-predictor, or its Hub copy 'aesthetic-model.pth' of "
               "trl-lib/ddpo-aesthetic-predictor (a plain state dict; a .safetensors conversion works too)")
BACKBONE_SOURCE = ("open_clip ViT-L-14 with OpenAI weights as an open_clip state dict, e.g. "
                   "open_clip_model.safetensors of timm/vit_large_patch14_clip_224.openai "
                   "(architecture ViT-L-14-quickgelu)")


class AestheticHead(nn.Module):
    """The predictor's layout: layers.{0,2,4,6,7} (dropouts between are inactive in eval)."""

    def __init__(self, input_size: int):
        super().__init__()
        self.input_size = input_size
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1),
        )

    def forward(self, x):
        return self.layers(x)


def load_head(path: str) -> AestheticHead:
    sd = load_state_dict(path, "aesthetic verifier")
    if "layers.0.weight" not in sd:
        raise VerifierError(
            f"aesthetic verifier: '{os.path.basename(path)}' has no 'layers.0.weight'; it is not an "
            f"improved-aesthetic-predictor head. Expected {HEAD_SOURCE}"
        )
    head = AestheticHead(int(sd["layers.0.weight"].shape[1]))
    load_strict(head, sd, "aesthetic verifier", os.path.basename(path))
    return head


class AestheticVerifier(Verifier):
    kind = "aesthetic"
    aspects = ("aesthetic",)

    def __init__(self, arch: str, clip_path: str, clip_name: str, head_path: str, head_name: str):
        self.clip = backbone(arch, clip_path, "aesthetic verifier")
        self.head = management.cached(("aesthetic_head", management.file_key(head_path)),
                                      lambda: management.manage(load_head(head_path), torch.float32))
        if self.head.module.input_size != self.clip.embed_dim:
            raise VerifierError(
                f"aesthetic verifier: the head '{head_name}' expects {self.head.module.input_size}-d CLIP "
                f"embeddings but '{clip_name}' ({arch}) gives {self.clip.embed_dim}-d. The LAION head "
                "needs open_clip ViT-L-14 (768-d) with OpenAI weights"
            )
        self._identity = f"aesthetic:{arch}:{clip_name}:{head_name}"
        self.managed_models = (self.clip, self.head)

    def _score(self, images, prompt, reference) -> VerifierResult:
        feats = self.clip.image_features(images)
        with torch.inference_mode():
            head = self.head.load()
            raw = head(feats.to(self.head.device, torch.float32)).squeeze(1).double().cpu()
        return VerifierResult(scores={"aesthetic": raw.clamp(0.0, 10.0)}, raw={"aesthetic": raw})
