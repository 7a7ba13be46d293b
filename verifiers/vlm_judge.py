"""A local vision-language model as judge (transformers AutoProcessor +
AutoModelForImageTextToText, e.g. Qwen2.5-VL / Qwen3-VL), without free-text parsing.

For each aspect the judge gets one forward pass per image (batched over images): the rubric
question, the candidate (and, for consistency/identity, the reference first), and the instruction
to answer with one digit 0-9. raw = expected digit = sum_d d * p(d), where p is the softmax of the
next-token logits restricted to the ten digit tokens, in [0, 9]; score = raw * 10 / 9.
Deterministic (no sampling), fine-grained (a probability-weighted mean, not an argmax).
"""

from __future__ import annotations

import torch

from . import management
from .base import Verifier, VerifierError, VerifierResult
from .rubric import NEEDS_REFERENCE, parse_aspects, question

SOURCE = ("a transformers vision-language model folder with its processor (config.json, *.safetensors, "
          "tokenizer and preprocessor files), e.g. Qwen/Qwen2.5-VL-3B-Instruct or Qwen/Qwen3-VL-4B-Instruct")
ANSWER = "Answer with one digit from 0 (very poor) to 9 (excellent) and nothing else."


class VLMModel:
    def __init__(self, folder: str):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        what = "VLM judge"
        try:
            self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        except Exception as e:
            raise VerifierError(f"{what}: cannot load the processor from {folder}: {e}. Expected {SOURCE}") from e
        device = management.load_device()
        dtype = management.compute_dtype(device, prefer=torch.bfloat16)
        try:
            model = AutoModelForImageTextToText.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=dtype)
        except Exception as e:
            raise VerifierError(f"{what}: cannot load the model from {folder}: {e}. Expected {SOURCE}") from e
        tok = getattr(self.processor, "tokenizer", None)
        if tok is None or getattr(self.processor, "chat_template", None) is None:
            raise VerifierError(f"{what}: {folder} has no tokenizer or chat template; it needs the processor "
                                "files of an instruction-tuned VLM")
        ids = []
        for d in "0123456789":
            enc = tok.encode(d, add_special_tokens=False)
            if len(enc) != 1:
                raise VerifierError(f"{what}: the tokenizer splits the digit '{d}' into {enc}; this judge needs "
                                    "single-token digits (Qwen-VL models have them)")
            ids.append(enc[0])
        self.digit_ids = torch.tensor(ids)
        self.managed = management.manage(model, dtype)

    @property
    def patcher(self):
        return self.managed.patcher

    @torch.inference_mode()
    def expected_digits(self, texts: list[str], images: list[list[torch.Tensor]]) -> torch.Tensor:
        model = self.managed.load()
        inputs = self.processor(text=texts, images=images, return_tensors="pt", padding=True, do_rescale=False)
        inputs = {k: v.to(self.managed.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.managed.dtype)
        mask = inputs.get("attention_mask")
        if mask is not None and not bool(mask[:, -1].all()):
            raise VerifierError("VLM judge: the processor padded on the right; set padding_side='left'")
        with management.interruptible(model):
            logits = model(**inputs).logits[:, -1, :].float()
        probs = torch.softmax(logits[:, self.digit_ids.to(logits.device)], dim=-1)
        return (probs * torch.arange(10, device=probs.device, dtype=probs.dtype)).sum(-1).double().cpu()


class VLMJudgeVerifier(Verifier):
    kind = "vlm_judge"

    def __init__(self, folder: str, name: str, aspects: str, max_batch: int = 4):
        self.aspects = parse_aspects(aspects)
        self.uses_reference = bool(NEEDS_REFERENCE & set(self.aspects))
        self.requires_reference = self.uses_reference
        self.max_batch = max(1, int(max_batch))
        self.model = management.cached(("vlm_judge", management.folder_key(folder)), lambda: VLMModel(folder))
        tok = self.model.processor.tokenizer
        tok.padding_side = "left"
        self._identity = f"vlm_judge:{name}:{','.join(self.aspects)}"
        self.managed_models = (self.model,)

    def _text(self, aspect: str, prompt: str) -> str:
        content = []
        if aspect in NEEDS_REFERENCE:
            content += [{"type": "text", "text": "Reference image:"}, {"type": "image"},
                        {"type": "text", "text": "Candidate image:"}]
        else:
            content += [{"type": "text", "text": "Candidate image:"}]
        content += [{"type": "image"}, {"type": "text", "text": f"{question(aspect, prompt)} {ANSWER}"}]
        messages = [{"role": "user", "content": content}]
        return self.model.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _score(self, images, prompt, reference) -> VerifierResult:
        # [3, H, W] each: score() has checked the pictures are [B, H, W, 3] and the reference [1, H, W, 3]
        cands = [img.movedim(-1, 0).float().clamp(0, 1) for img in images]
        ref = reference[0].movedim(-1, 0).float().clamp(0, 1) if reference is not None else None
        scores, raw = {}, {}
        for aspect in self.aspects:
            text = self._text(aspect, prompt)
            values = []
            for start in range(0, len(cands), self.max_batch):
                chunk = cands[start:start + self.max_batch]
                imgs = [[ref, c] if aspect in NEEDS_REFERENCE else [c] for c in chunk]
                values.append(self.model.expected_digits([text] * len(chunk), imgs))
            raw[aspect] = torch.cat(values)
            scores[aspect] = (raw[aspect] * 10.0 / 9.0).clamp(0.0, 10.0)
        return VerifierResult(scores=scores, raw=raw)
