"""open_clip backbones shared by clip_score, aesthetic, hpsv2 and preservation: building an
architecture, loading a weights file into it, batched preprocessing and normalised embeddings.

One loaded backbone per (architecture, file), so e.g. the aesthetic verifier and a CLIP score
verifier on the same ViT-L-14 file share one model in memory.
"""

from __future__ import annotations

import logging
import os

import torch

from . import management
from .base import VerifierError
from .images import to_pixels
from .weights import load_state_dict, load_strict


def architectures() -> list[str]:
    import open_clip

    return sorted(open_clip.list_models())


class OpenClipBackbone:
    def __init__(self, arch: str, path: str, what: str):
        import open_clip

        if arch not in open_clip.list_models():
            raise VerifierError(
                f"{what}: '{arch}' is not an open_clip architecture; choose one of open_clip.list_models() "
                "(e.g. ViT-B-32, ViT-L-14-quickgelu for OpenAI weights, ViT-H-14)"
            )
        self.arch = arch
        self.name = os.path.basename(path)
        # Silence open_clip's "no pretrained weights loaded" warning: we load them next.
        logger = logging.getLogger()
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            model = open_clip.create_model(arch, pretrained=None)
        finally:
            logger.setLevel(level)
        load_strict(model, load_state_dict(path, what), what, self.name)
        # open_clip (>= 2.24, as required) gives every model it creates its eval preprocessing: size
        # (the visual tower's own), mean, std, resize_mode, interpolation
        cfg = model.visual.preprocess_cfg
        size = cfg["size"]
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.mean, self.std = tuple(cfg["mean"]), tuple(cfg["std"])
        self.resize_mode, self.interpolation = cfg["resize_mode"], cfg["interpolation"]  # to_pixels checks them
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.embed_dim = int(model.text_projection.shape[-1]) if getattr(model, "text_projection", None) is not None \
            else int(model.visual.output_dim)
        self.managed = management.manage(model)

    @property
    def patcher(self):
        return self.managed.patcher

    @property
    def logit_scale(self) -> float:
        return float(self.managed.module.logit_scale.exp().item())

    @torch.inference_mode()
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings [B, D] (float32, on the load device)."""
        model = self.managed.load()
        pixels = to_pixels(images.to(self.managed.device), self.size, self.mean, self.std,
                           self.resize_mode, self.interpolation)
        feats = model.encode_image(pixels.to(self.managed.dtype)).float()
        return torch.nn.functional.normalize(feats, dim=-1)

    def prompt_tokens(self, prompt: str) -> tuple[int, int]:
        """(tokens with start/end markers, the context length the text tower reads)."""
        limit = int(self.tokenizer.context_length)  # open_clip's tokenizers all carry it (77 for CLIP)
        encode = getattr(self.tokenizer, "encode", None)
        if encode is None:  # an HF-backed open_clip tokenizer
            return len(self.tokenizer.tokenizer(prompt)["input_ids"]), limit
        return len(encode(prompt)) + 2, limit

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        model = self.managed.load()
        tokens = self.tokenizer(texts).to(self.managed.device)
        feats = model.encode_text(tokens).float()
        return torch.nn.functional.normalize(feats, dim=-1)

    def prompt_cosine(self, images: torch.Tensor, prompt: str) -> torch.Tensor:
        """Cosine between each image's and the prompt's embedding, float64 [B] on the CPU."""
        return (self.image_features(images) @ self.text_features([prompt]).T).squeeze(1).double().cpu()


def backbone(arch: str, path: str, what: str) -> OpenClipBackbone:
    return management.cached(("open_clip", arch, management.file_key(path)),
                             lambda: OpenClipBackbone(arch, path, what))
