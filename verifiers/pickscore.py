"""PickScore (Kirstain et al. 2023): human preference for the image given the prompt, a CLIP-H
fine-tuned on Pick-a-Pic, as a transformers CLIPModel folder with its CLIPProcessor files.

raw = logit_scale.exp() * cos(image, text) (the reference code's score; logit_scale.exp() is ~100
for PickScore_v1), real generations mostly 17-24. score = 10 * (raw - 16) / 8 clamped, i.e.
16 -> 0, 20 -> 5, 24 -> 10.
"""

from __future__ import annotations

import json
import os

import torch

from . import management
from .base import Verifier, VerifierError, VerifierResult, linear_to_score
from .images import to_pixels

RAW_LOW, RAW_HIGH = 16.0, 24.0
SOURCE = ("a transformers CLIP folder with processor files: the weights/config of yuvalkirstain/PickScore_v1 "
          "plus the tokenizer and preprocessor files of laion/CLIP-ViT-H-14-laion2B-s32B-b79K in the same folder")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


PROMPT_TOKENS = 77  # CLIP's text context; longer prompts are cut (reported)

class PickScoreModel:
    def __init__(self, folder: str):
        from transformers import AutoTokenizer, CLIPModel

        what = "PickScore verifier"
        management.require_tokenizer_files(folder, what, SOURCE)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        except Exception as e:
            raise VerifierError(f"{what}: no usable tokenizer files in {folder} ({e}). Expected {SOURCE}") from e
        try:
            model = CLIPModel.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                              use_safetensors=True)
        except Exception as e:
            raise VerifierError(f"{what}: cannot load a CLIPModel from {folder}: {e}. Expected {SOURCE}") from e
        cfg = {}
        pre = os.path.join(folder, "preprocessor_config.json")
        if os.path.isfile(pre):
            with open(pre, encoding="utf-8") as f:
                cfg = json.load(f)
        crop = cfg.get("crop_size", model.config.vision_config.image_size)
        self.size = (crop["height"], crop["width"]) if isinstance(crop, dict) else (int(crop), int(crop))
        self.mean = tuple(cfg.get("image_mean", CLIP_MEAN))
        self.std = tuple(cfg.get("image_std", CLIP_STD))
        self.managed = management.manage(model)

    @property
    def patcher(self):
        return self.managed.patcher

    @torch.inference_mode()
    def raw(self, images: torch.Tensor, prompt: str) -> torch.Tensor:
        model = self.managed.load()
        dev = self.managed.device
        pixels = to_pixels(images.to(dev), self.size, self.mean, self.std).to(self.managed.dtype)
        # one prompt: nothing to pad (CLIP's text tower pools at the end-of-text token, wherever it is)
        tokens = self.tokenizer([prompt], truncation=True, max_length=PROMPT_TOKENS, return_tensors="pt")
        img = model.get_image_features(pixel_values=pixels)
        txt = model.get_text_features(input_ids=tokens["input_ids"].to(dev),
                                      attention_mask=tokens["attention_mask"].to(dev))
        img = getattr(img, "pooler_output", img)
        txt = getattr(txt, "pooler_output", txt)
        img = torch.nn.functional.normalize(img.float(), dim=-1)
        txt = torch.nn.functional.normalize(txt.float(), dim=-1)
        return (model.logit_scale.exp().float() * (img @ txt.T)).squeeze(1).double().cpu()


class PickScoreVerifier(Verifier):
    kind = "pickscore"
    aspects = ("pickscore",)

    def __init__(self, folder: str, name: str):
        self.model = management.cached(("pickscore", management.folder_key(folder)), lambda: PickScoreModel(folder))
        self._identity = f"pickscore:{name}"
        self.managed_models = (self.model,)

    def prompt_tokens(self, prompt):
        return len(self.model.tokenizer(prompt)["input_ids"]), PROMPT_TOKENS

    def _score(self, images, prompt, reference) -> VerifierResult:
        raw = self.model.raw(images, prompt)
        return VerifierResult(scores={"pickscore": linear_to_score(raw, RAW_LOW, RAW_HIGH)}, raw={"pickscore": raw})
