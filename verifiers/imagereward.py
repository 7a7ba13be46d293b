"""ImageReward (Xu et al. 2023): a BLIP reward model trained on 137k expert comparisons of
text-to-image outputs, for prompt alignment and overall quality (composition, fidelity).

The published checkpoint (``ImageReward.pt``: ``blip.visual_encoder.*``, ``blip.text_encoder.*``,
``mlp.layers.*``) is mapped onto transformers' BLIP vision and text models, so the ``image-reward``
package (pinning old timm/fairscale) is not needed. The text encoder cross-attends to the image
patches; its [CLS] feature goes through the MLP head.

raw = (reward - 0.16717) / 1.03334, the z-score ImageReward itself reports (mean/std of its
training rewards); typical values -2..2. score = 10 * (raw + 2) / 4 clamped: -2 -> 0, 0 -> 5, 2 -> 10.
"""

from __future__ import annotations

import math
import os
import re

import torch
from torch import nn

from . import management
from .aesthetic import AestheticHead
from .base import Verifier, VerifierError, VerifierResult, linear_to_score
from .images import to_pixels
from .weights import load_state_dict, load_strict

MEAN, STD = 0.16717362830052426, 1.0333394966054072
RAW_LOW, RAW_HIGH = -2.0, 2.0
DEFAULT_CHECKPOINT = "ImageReward.pt"
SOURCE = ("a folder holding 'ImageReward.pt' from the Hugging Face repo THUDM/ImageReward plus the BLIP "
          "config.json and tokenizer files of Salesforce/blip-itm-large-coco (its weights are not needed)")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_VISION_RULES = [
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^patch_embed\.proj\.(weight|bias)$", r"embeddings.patch_embedding.\1"),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
    (r"^blocks\.(\d+)\.mlp\.(fc\d)\.", r"encoder.layers.\1.mlp.\2."),
    (r"^norm\.", "post_layernorm."),
]


def map_checkpoint(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """ImageReward.pt keys -> this module's keys. Returns (mapped, unused keys of the file)."""
    out, unused = {}, []
    for key, value in sd.items():
        if key.startswith("blip.visual_encoder."):
            rest = key[len("blip.visual_encoder."):]
            for pattern, repl in _VISION_RULES:
                if re.search(pattern, rest):
                    out["vision_model." + re.sub(pattern, repl, rest)] = value
                    break
            else:
                unused.append(key)
        elif key.startswith("blip.text_encoder.") and not key.endswith("position_ids"):
            out["text_encoder." + key[len("blip.text_encoder."):]] = value
        elif key.startswith("mlp."):
            out[key] = value
        else:
            unused.append(key)  # e.g. BLIP's unused projection/ITM heads, position_ids buffers
    return out, unused


PROMPT_TOKENS = 35  # ImageReward's BLIP text length; longer prompts are cut (reported)

class ImageRewardModule(nn.Module):
    def __init__(self, config, image_size: int):
        super().__init__()
        from transformers.models.blip.modeling_blip import BlipVisionModel
        from transformers.models.blip.modeling_blip_text import BlipTextModel

        vision = config.vision_config
        vision.image_size = image_size
        config.text_config.encoder_hidden_size = vision.hidden_size
        self.vision_model = BlipVisionModel(vision)
        self.text_encoder = BlipTextModel(config.text_config, add_pooling_layer=False)
        self.mlp = AestheticHead(config.text_config.hidden_size)

    def forward(self, pixel_values, input_ids, attention_mask):
        image_embeds = self.vision_model(pixel_values=pixel_values).last_hidden_state
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask,
                                encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
        cls_feature = out.last_hidden_state[:, 0, :]
        return self.mlp(cls_feature.to(self.mlp.layers[0].weight.dtype)).float().squeeze(-1)


class ImageRewardModel:
    def __init__(self, folder: str, checkpoint: str):
        from transformers import AutoTokenizer, BlipConfig

        what = "ImageReward verifier"
        management.require_tokenizer_files(folder, what, SOURCE)
        try:
            config = BlipConfig.from_pretrained(folder, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        except Exception as e:
            raise VerifierError(f"{what}: cannot read the BLIP config/tokenizer in {folder}: {e}. Expected {SOURCE}") from e
        sd = load_state_dict(checkpoint, what)
        mapped, _unused = map_checkpoint(sd)
        pos = mapped.get("vision_model.embeddings.position_embedding")
        if pos is None or "mlp.layers.0.weight" not in mapped:
            raise VerifierError(f"{what}: '{os.path.basename(checkpoint)}' does not have the ImageReward layout "
                                "(blip.visual_encoder.*, blip.text_encoder.*, mlp.layers.*)")
        grid = math.isqrt(pos.shape[1] - 1)
        image_size = grid * config.vision_config.patch_size
        module = ImageRewardModule(config, image_size).float()
        load_strict(module, mapped, what, os.path.basename(checkpoint))
        self.size = (image_size, image_size)
        self.managed = management.manage(module)

    @property
    def patcher(self):
        return self.managed.patcher

    @torch.inference_mode()
    def rewards(self, images: torch.Tensor, prompt: str) -> torch.Tensor:
        model = self.managed.load()
        dev = self.managed.device
        pixels = to_pixels(images.to(dev), self.size, CLIP_MEAN, CLIP_STD).to(self.managed.dtype)
        tok = self.tokenizer([prompt], padding="max_length", truncation=True, max_length=PROMPT_TOKENS, return_tensors="pt")
        n = images.shape[0]
        reward = model(pixels, tok["input_ids"].to(dev).expand(n, -1), tok["attention_mask"].to(dev).expand(n, -1))
        return ((reward.double().cpu() - MEAN) / STD)


class ImageRewardVerifier(Verifier):
    kind = "imagereward"
    aspects = ("imagereward",)

    def __init__(self, folder: str, folder_name: str, checkpoint: str):
        path = os.path.join(folder, checkpoint)
        if not os.path.isfile(path):
            raise VerifierError(management.missing_message("ImageReward verifier", f"{folder_name}/{checkpoint}", SOURCE))
        key = ("imagereward", management.folder_key(folder), management.file_key(path))
        self.model = management.cached(key, lambda: ImageRewardModel(folder, path))
        self._identity = f"imagereward:{folder_name}:{checkpoint}"
        self.managed_models = (self.model,)

    def prompt_tokens(self, prompt):
        return len(self.model.tokenizer(prompt)["input_ids"]), PROMPT_TOKENS

    def _score(self, images, prompt, reference) -> VerifierResult:
        raw = self.model.rewards(images, prompt)
        return VerifierResult(scores={"imagereward": linear_to_score(raw, RAW_LOW, RAW_HIGH)},
                              raw={"imagereward": raw})
