"""Tiny random-initialised verifier models written to disk in the real on-disk formats.

Fixed seeds; architectures and file layouts are the real ones (open_clip state dicts, the LAION
aesthetic head layout, transformers HF folders with tokenizer files made offline), only the sizes
are small so the whole verifier suite runs on two CPU cores.

The preference models and the aesthetic head are then calibrated so their raw values spread over
each verifier's raw -> [0, 10] mapping range on the tests' pictures (``make_images``): random
weights alone give raw values that are all clamped or all equal, and a changed mapping constant
would go unnoticed. Calibration sets only final LayerNorm biases, a few weight scales, and a head's
biases and last linear layer, from the embeddings of CALIBRATION_IMAGES (other pictures than the
tests') and CALIBRATION_PROMPT, so the files stay in the real formats and are loaded through the
pack's real loaders.
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


CALIBRATION_IMAGES = {"n": 32, "seed": 1}  # make_images(**CALIBRATION_IMAGES); the tests use seed 0
CALIBRATION_PROMPT = "a red apple"  # the host tests' prompt
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def calibration_pixels(size: int) -> torch.Tensor:
    """The calibration pictures as CLIP input [32, 3, size, size]: CLIP's eval transform (torchvision
    Resize of the short side to ``size``, bicubic, then CenterCrop; as open_clip.image_transform),
    clamped to [0, 1] as 8-bit pictures are, then CLIP's mean/std."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tvf
    from verifier_checks import make_images

    x = make_images(**CALIBRATION_IMAGES).movedim(-1, 1)
    x = tvf.resize(x, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
    x = tvf.center_crop(x, [size, size]).clamp(0, 1)
    return tvf.normalize(x, CLIP_MEAN, CLIP_STD)


def _spread(values: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(mean [D], a fixed random unit direction [D], the standard deviation of values [N, D] along it).

    A fixed direction, not the direction of largest spread: that one is fitted to these N pictures and
    overstates how much other pictures (the tests') spread along it."""
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(values.shape[1], generator=gen, dtype=values.dtype)
    direction = direction / direction.norm()
    return values.mean(0), direction, float((values @ direction).std())


def spread_head(sd: dict[str, torch.Tensor], features: torch.Tensor, centre: float, std: float) -> None:
    """Set the biases and the last layer (layers.7, 16 -> 1) of an aesthetic-layout head, in place, so its
    output on ``features`` [N, input_size] has mean ``centre`` and standard deviation ``std``. The head
    has no nonlinearity: each of layers 0-6 gets its output centred on these features (so float32
    rounding of the part all pictures share is not amplified by the last layer: scores of a picture
    alone and in a batch stay within 1e-4), and layer 7 reads layer 6's output along a fixed direction
    (see _spread)."""
    h = features.double()
    for idx in (0, 2, 4, 6):
        h = h @ sd[f"layers.{idx}.weight"].double().T + sd[f"layers.{idx}.bias"].double()
        sd[f"layers.{idx}.bias"] = (sd[f"layers.{idx}.bias"].double() - h.mean(0)).float()
        h = h - h.mean(0)
    mean, direction, sigma = _spread(h, seed=0)
    weight = direction * (std / sigma)
    sd["layers.7.weight"] = weight.float().unsqueeze(0)
    sd["layers.7.bias"] = torch.tensor([centre - float(weight @ mean)], dtype=torch.float32)


def spread_cosines(image_emb: torch.Tensor, text_emb: torch.Tensor, image_proj: torch.Tensor,
                   text_proj: torch.Tensor, cos_centre: float, cos_std: float, seed: int = 0):
    """Final-LayerNorm biases (image [W], text [W]) that make cos(image, text) spread around ``cos_centre``
    with standard deviation about ``cos_std`` over the calibration pictures, for a CLIP whose embedding
    is (LayerNorm output) @ proj [W, D].

    ``image_emb`` [N, D] are the calibration pictures' embeddings and ``text_emb`` [D] the calibration
    prompt's, both with zero final-LayerNorm biases (so a bias b adds b @ proj). The image bias moves the
    pictures' mean embedding to R * n (n a unit vector), keeping their differences d_i; the text bias
    makes the prompt's embedding K * (c * n + sqrt(1 - c^2) * v), v a fixed unit direction (see
    _spread) orthogonal to n. Then cos_i ~= c + sqrt(1 - c^2) * (d_i . v) / R, and R is chosen
    so that spread is ``cos_std``. K = 10 |text_emb| keeps other prompts' cosines near these."""
    mean, v, sigma = _spread(image_emb.double(), seed)
    gen = torch.Generator().manual_seed(seed + 1)
    n = torch.randn(mean.shape[0], generator=gen, dtype=torch.float64)
    n = n - (n @ v) * v
    n = n / n.norm()
    sine = (1 - cos_centre**2) ** 0.5
    radius = sine * sigma / cos_std
    text = text_emb.double()
    k = 10 * float(text.norm())
    image_target = radius * n - mean
    text_target = k * (cos_centre * n + sine * v) - text
    image_bias = torch.linalg.lstsq(image_proj.double().T, image_target.unsqueeze(1)).solution.squeeze(1)
    text_bias = torch.linalg.lstsq(text_proj.double().T, text_target.unsqueeze(1)).solution.squeeze(1)
    return image_bias.float(), text_bias.float()


def aesthetic_head_state_dict(input_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random head in the LAION predictor's layout (layers.{0,2,4,6,7}, no nonlinearity)."""
    gen = torch.Generator().manual_seed(seed)
    dims = [(input_size, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]
    sd = {}
    for idx, (i, o) in zip((0, 2, 4, 6, 7), dims, strict=True):
        sd[f"layers.{idx}.weight"] = torch.randn(o, i, generator=gen) / i**0.5
        sd[f"layers.{idx}.bias"] = torch.full((o,), 0.1)
    sd["layers.7.bias"] = torch.tensor([5.0])  # centre the output near the real head's ~5
    return sd


AESTHETIC_CENTRE, AESTHETIC_STD = 5.0, 6.0  # raw ~ -1..11 on calibration pictures: clamped at both ends


def write_aesthetic_head(path: Path, input_size: int, seed: int = 0, clip_weights: Path | None = None,
                         arch: str = TINY_CLIP) -> Path:
    """A plain state dict saved with torch.save, as the published .pth is. With ``clip_weights`` (an
    open_clip state dict of ``arch``), the biases and last layer are set (:func:`spread_head`) so the
    head's output on that CLIP's normalised image embeddings of the calibration pictures has mean
    AESTHETIC_CENTRE and standard deviation AESTHETIC_STD: some pictures then clamp at 0, some at 10,
    some fall between."""
    sd = aesthetic_head_state_dict(input_size, seed)
    if clip_weights is not None:
        import open_clip
        from safetensors.torch import load_file

        model = open_clip.create_model(arch, pretrained=None)
        model.load_state_dict(load_file(str(clip_weights)))
        with torch.no_grad():
            pixels = calibration_pixels(model.visual.image_size[0])
            features = model.eval().encode_image(pixels, normalize=True)
        spread_head(sd, features, AESTHETIC_CENTRE, AESTHETIC_STD)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
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


PICKSCORE_COS_CENTRE, PICKSCORE_COS_STD = 0.20, 0.03  # x logit scale 100: raw 20 +- 3 (mapping 16..24)


def write_tiny_pickscore(folder: Path, seed: int = 0) -> Path:
    """A transformers CLIPModel folder with CLIPProcessor files, as PickScore_v1 + its processor.

    Final-LayerNorm biases from :func:`spread_cosines`: raw = 100 * cos about 20 +- 3 on the
    calibration pictures and prompt, so PickScore's 16..24 mapping range is crossed, not clamped."""
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
    model = CLIPModel(config).eval()
    vision, text_model = model.vision_model, model.text_model
    # spread_cosines' premise: the final LayerNorms' biases are zero
    assert not vision.post_layernorm.bias.any() and not text_model.final_layer_norm.bias.any()
    with torch.no_grad():
        model.logit_scale.fill_(4.6052)  # exp = 100, as in the trained PickScore model
        image = model.get_image_features(pixel_values=calibration_pixels(32))
        text = model.get_text_features(**tok([CALIBRATION_PROMPT], return_tensors="pt"))
        image_bias, text_bias = spread_cosines(getattr(image, "pooler_output", image),
                                               getattr(text, "pooler_output", text)[0],
                                               model.visual_projection.weight.T,
                                               model.text_projection.weight.T,
                                               PICKSCORE_COS_CENTRE, PICKSCORE_COS_STD)
        vision.post_layernorm.bias.copy_(image_bias)
        text_model.final_layer_norm.bias.copy_(text_bias)
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(folder)
    return folder


HPS_COS_CENTRE, HPS_COS_STD = 0.25, 0.07  # raw = cos about 0.25 +- 0.07 (mapping 0.15..0.35)


def write_hps(path: Path, seed: int = 1, arch: str = TINY_CLIP) -> Path:
    """An HPS-style checkpoint: torch.save({'state_dict': open_clip state dict}).

    For the tiny architecture the final-LayerNorm biases (``ln_post``, ``ln_final``) come from
    :func:`spread_cosines`: cos about 0.25 +- 0.07 on the calibration pictures and prompt, so HPSv2's
    0.15..0.35 mapping range is crossed, not clamped. Other architectures (bench) stay random."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    if arch == TINY_CLIP:
        model.eval()
        assert not model.visual.ln_post.bias.any() and not model.ln_final.bias.any()  # spread_cosines
        with torch.no_grad():
            image = model.encode_image(calibration_pixels(model.visual.image_size[0]))
            text = model.encode_text(open_clip.get_tokenizer(arch)([CALIBRATION_PROMPT]))
            image_bias, text_bias = spread_cosines(image, text[0], model.visual.proj, model.text_projection,
                                                   HPS_COS_CENTRE, HPS_COS_STD)
            model.visual.ln_post.bias.copy_(image_bias)
            model.ln_final.bias.copy_(text_bias)
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


IR_MEAN, IR_STD = 0.16717362830052426, 1.0333394966054072  # ImageReward's reward mean/std (raw = z-score)
IR_CROSS_GAIN = 4.0  # cross-attention weight scale: pictures move [CLS] ~10x more than prompts do


def write_tiny_imagereward(folder: Path, seed: int = 0) -> Path:
    """A folder like the one users make: BLIP config.json + tokenizer files, and ImageReward.pt in the
    published checkpoint's key layout (blip.visual_encoder.* in BLIP's original ViT names,
    blip.text_encoder.*, mlp.layers.*, plus unused BLIP keys), saved as a plain state dict.

    The vision tower is initialised with std 0.02 (BLIP's vision default, 1e-10, gives a tower whose
    output is the same for every picture), and BERT's initialisation (std 0.02) makes the text
    encoder's cross-attention to the image patches weak, so its query/key/value/output weights are
    scaled by IR_CROSS_GAIN. The MLP head's biases and last layer come from :func:`spread_head` on the
    [CLS] features of the calibration pictures and prompt: raw (the reward's z-score) about 0 +- 1, so
    ImageReward's -2..2 mapping range is crossed, not clamped."""
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
    vision_cfg.initializer_range = 0.02  # BLIP's default 1e-10 gives ~zero weights: all pictures alike
    vision = BlipVisionModel(vision_cfg)
    text = BlipTextModel(config.text_config, add_pooling_layer=False)
    cross = text.encoder.layer[0].crossattention
    with torch.no_grad():
        for linear in (cross.self.query, cross.self.key, cross.self.value, cross.output.dense):
            linear.weight.mul_(IR_CROSS_GAIN)
        image_embeds = vision.eval()(pixel_values=calibration_pixels(32)).last_hidden_state
        tokens = tok([CALIBRATION_PROMPT], padding="max_length", truncation=True, max_length=35,  # BLIP's 35
                     return_tensors="pt")
        n = image_embeds.shape[0]
        out = text.eval()(input_ids=tokens["input_ids"].expand(n, -1),
                          attention_mask=tokens["attention_mask"].expand(n, -1),
                          encoder_hidden_states=image_embeds,
                          encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long))
        cls_features = out.last_hidden_state[:, 0, :]
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
    head = aesthetic_head_state_dict(32, seed)
    spread_head(head, cls_features, IR_MEAN, IR_STD)  # raw (the reward's z-score) ~ 0 +- 1 on calibration
    sd.update({f"mlp.{k}": v for k, v in head.items()})
    torch.save(sd, folder / "ImageReward.pt")
    return folder
