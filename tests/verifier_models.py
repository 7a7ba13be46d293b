"""Tiny random-initialised verifier models written to disk in the real on-disk formats.

Fixed seeds; architectures and file layouts are the real ones (open_clip state dicts, the LAION
aesthetic head layout, transformers HF folders with tokenizer files made offline), only the sizes
are small so the whole verifier suite runs on two CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_CLIP = "EACPS-Tiny-ViT"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_open_clip(config_dir: Path) -> str:
    """Register the tiny architecture with open_clip (as a user would add a model config)."""
    import open_clip

    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
    return TINY_CLIP


def write_open_clip(path: Path, seed: int = 0, arch: str = TINY_CLIP) -> Path:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def aesthetic_head_state_dict(input_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    dims = [(input_size, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]
    sd = {}
    for idx, (i, o) in zip((0, 2, 4, 6, 7), dims, strict=True):
        sd[f"layers.{idx}.weight"] = torch.randn(o, i, generator=gen) / i**0.5
        sd[f"layers.{idx}.bias"] = torch.full((o,), 0.1)
    sd["layers.7.bias"] = torch.tensor([5.0])  # centre the output near the real head's ~5
    return sd


def write_aesthetic_head(path: Path, input_size: int, seed: int = 0) -> Path:
    """A plain state dict saved with torch.save, as the published .pth is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(aesthetic_head_state_dict(input_size, seed), path)
    return path


def write_dinov2(folder: Path, seed: int = 0, safetensors: bool = True) -> Path:
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          patch_size=8, image_size=32)
    model = Dinov2Model(config)
    model.save_pretrained(folder)
    if not safetensors:  # the old pickle layout (transformers 5 itself writes only safetensors)
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": 32, "width": 32}, "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225], "image_processor_type": "BitImageProcessor",
    }))
    return folder


QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_qwen2_vl(folder: Path, seed: int = 0) -> Path:
    """A tiny Qwen2-VL (transformers) with a WordLevel tokenizer: digits, a few words and Qwen's
    special tokens; saved with save_pretrained like a real model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    words = ["[UNK]", "[PAD]", *list("0123456789"), "image", "reference", "candidate", "score", "the",
             "prompt", "a", "red", "apple", "realism", "identity", ":", ".", ",", "?", "(", ")"]
    vocab = {w: i for i, w in enumerate(words + QWEN_SPECIAL)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="<|im_end|>", additional_special_tokens=QWEN_SPECIAL)
    fast.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL})
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=fast, video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE)
    torch.manual_seed(seed)
    config = Qwen2VLConfig(
        text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=64, vocab_size=len(vocab), bos_token_id=None,
                         eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["[PAD]"],
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"])
    model = Qwen2VLForConditionalGeneration(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_clip_tokenizer():
    """A real CLIP BPE tokenizer over a tiny vocabulary (letters, a few merges)."""
    from transformers import CLIPTokenizer

    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = {}
    for t in ["<|startoftext|>", "<|endoftext|>", *letters, *(c + "</w>" for c in letters), "ap", "re", "red</w>"]:
        vocab[t] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[("a", "p"), ("r", "e"), ("re", "d</w>")])


def write_tiny_pickscore(folder: Path, seed: int = 0) -> Path:
    """A transformers CLIPModel folder with CLIPProcessor files, as PickScore_v1 + its processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        projection_dim=16)
    model = CLIPModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(4.6052)  # exp = 100, as in the trained PickScore model
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(folder)
    return folder


def write_hps(path: Path, seed: int = 1, arch: str = TINY_CLIP) -> Path:
    """An HPS-style checkpoint: torch.save({'state_dict': open_clip state dict})."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def tiny_bert_tokenizer():
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "apple", "on", "table", "the", "make", "it"]
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)})


_IR_VISION_INVERSE = [
    (r"^embeddings\.class_embedding$", "cls_token"),
    (r"^embeddings\.position_embedding$", "pos_embed"),
    (r"^embeddings\.patch_embedding\.", "patch_embed.proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm1\.", r"blocks.\1.norm1."),
    (r"^encoder\.layers\.(\d+)\.layer_norm2\.", r"blocks.\1.norm2."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.projection\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layers\.(\d+)\.mlp\.", r"blocks.\1.mlp."),
    (r"^post_layernorm\.", "norm."),
]


def write_tiny_imagereward(folder: Path, seed: int = 0) -> Path:
    """A folder like the one users make: BLIP config.json + tokenizer files, and ImageReward.pt in the
    published checkpoint's key layout (blip.visual_encoder.* in BLIP's original ViT names,
    blip.text_encoder.*, mlp.layers.*, plus unused BLIP keys), saved as a plain state dict."""
    import re

    from transformers import BlipConfig
    from transformers.models.blip.modeling_blip import BlipVisionModel
    from transformers.models.blip.modeling_blip_text import BlipTextModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = tiny_bert_tokenizer()
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=384, patch_size=16),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, encoder_hidden_size=32, max_position_embeddings=64,
                         bos_token_id=2, sep_token_id=3, pad_token_id=0),
        image_text_hidden_size=16)
    config.save_pretrained(folder)
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    vision_cfg = config.vision_config
    vision_cfg.image_size = 32  # the checkpoint's own resolution (ImageReward: 224), not the config's
    vision = BlipVisionModel(vision_cfg)
    text = BlipTextModel(config.text_config, add_pooling_layer=False)
    sd = {}
    for key, value in vision.state_dict().items():
        for pattern, repl in _IR_VISION_INVERSE:
            if re.search(pattern, key):
                sd["blip.visual_encoder." + re.sub(pattern, repl, key)] = value
                break
        else:
            raise AssertionError(key)
    for key, value in text.state_dict().items():
        sd["blip.text_encoder." + key] = value
    sd["blip.text_encoder.embeddings.position_ids"] = torch.arange(64).unsqueeze(0)
    sd["blip.vision_proj.weight"] = torch.zeros(16, 32)  # present in the real file, unused for the reward
    sd.update({f"mlp.{k}": v for k, v in aesthetic_head_state_dict(32, seed).items()})
    sd["mlp.layers.7.bias"] = torch.tensor([0.0])
    torch.save(sd, folder / "ImageReward.pt")
    return folder
