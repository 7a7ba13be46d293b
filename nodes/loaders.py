"""Loader nodes, one per verifier kind (the technical one needs no weights): pick weights from models/verifiers, output an
EACPS_VERIFIER. All logic lives in eacps.verifiers; these only adapt inputs.

Combo inputs list the files/folders found, but are also named in ``validate_inputs`` so ComfyUI
accepts a typed name and our check explains a missing file (which file, which folder, where to get
it) instead of a bare "value not in list".
"""

from __future__ import annotations

from comfy_api.latest import io

from ..verifiers import downloads, management
from ..verifiers.protocol import VerifierError
from ..verifiers.rubric import parse_aspects
from ..verifiers.technical import TechnicalQualityVerifier
from .checks import first_error
from .types import Verifier

management.register_folders()

CATEGORY = "EACPS/verifiers"


def _arch_options(default: str) -> list[str]:
    from ..verifiers.openclip import architectures

    archs = architectures()
    return archs if default in archs else [default, *archs]


def _null_choice(**values) -> bool | str:
    """A file, folder or option given as null (an API prompt's JSON null): named, before any file check."""
    nulls = [name for name, value in values.items() if value is None]
    return f"{nulls[0]}: no value given (null); choose one of the listed options" if nulls else True


def _all_missing(*checks) -> bool | str:
    """Like first_error, but every failing check's message (a loader with two missing files names both)."""
    messages = [m for m in (first_error(c) for c in checks) if m is not True]
    return "\n".join(messages) if messages else True


def _download_input(repos: str) -> io.Boolean.Input:
    """The opt-in download switch (off: the loader never touches the network). Optional, so API
    prompts written before it existed still validate."""
    return io.Boolean.Input("download", default=False, optional=True,
                            tooltip=f"If the chosen weights are missing and are public ones this pack knows ({repos}), "
                                    "download them with huggingface_hub into models/verifiers (resumable, checked). "
                                    "Off: never touch the network.")


class LoadClipScoreVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_LoadClipScoreVerifier",
            display_name="Load CLIP Score Verifier (EACPS)",
            category=CATEGORY,
            description="Prompt-image agreement (CLIPScore, Hessel et al.): 2.5*max(cos,0) with any open_clip "
                        "model, mapped to 0..10 (x4).",
            inputs=[
                io.Combo.Input("arch", options=_arch_options("ViT-H-14"), default="ViT-H-14",
                               tooltip="open_clip architecture the weights were trained with "
                                       "(OpenAI weights need the -quickgelu variant)."),
                io.Combo.Input("weights", options=downloads.options(
                    management.weight_files(), downloads.CLIP_FILES, "open_clip_model.safetensors"),
                    tooltip="open_clip state dict in models/verifiers (.safetensors preferred)."),
                _download_input("laion/CLIP-ViT-H-14-laion2B-s32B-b79K, timm/vit_large_patch14_clip_224.openai"),
            ],
            outputs=[Verifier.Output()],
        )

    @classmethod
    def validate_inputs(cls, arch, weights, download=False):
        from ..verifiers.clip_score import SOURCE

        if (null := _null_choice(arch=arch, weights=weights)) is not True:
            return null

        return first_error((downloads.check, weights, "CLIP score verifier", SOURCE, download, downloads.CLIP_FILES),
                           (downloads.check_arch, weights, arch, "CLIP score verifier"))

    @classmethod
    def execute(cls, arch, weights, download=False) -> io.NodeOutput:
        from ..verifiers.clip_score import SOURCE, ClipScoreVerifier

        path = downloads.resolve(weights, "CLIP score verifier", SOURCE, download, downloads.CLIP_FILES)
        return io.NodeOutput(ClipScoreVerifier(arch, path, weights))


class LoadAestheticVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from ..verifiers.aesthetic import HEAD_FILE

        return io.Schema(
            node_id="EACPS_LoadAestheticVerifier",
            display_name="Load Aesthetic Verifier (EACPS)",
            category=CATEGORY,
            description="LAION improved aesthetic predictor: an MLP on the CLIP ViT-L-14 image embedding, "
                        "~1..10 (how good it looks; ignores the prompt).",
            inputs=[
                io.Combo.Input("clip_arch", options=_arch_options("ViT-L-14-quickgelu"),
                               default="ViT-L-14-quickgelu",
                               tooltip="The head was trained on OpenAI ViT-L-14 (quickgelu) embeddings."),
                io.Combo.Input("clip_weights", options=downloads.options(
                    management.weight_files(), (downloads.CLIP_L_OPENAI,), "open_clip_model.safetensors"),
                    tooltip="open_clip ViT-L-14 OpenAI state dict in models/verifiers."),
                io.Combo.Input("head_weights", options=downloads.options(
                    management.weight_files(), (downloads.AESTHETIC_HEAD,), HEAD_FILE),
                    tooltip=f"The aesthetic MLP head ({HEAD_FILE}) in models/verifiers."),
                _download_input("timm/vit_large_patch14_clip_224.openai, trl-lib/ddpo-aesthetic-predictor"),
            ],
            outputs=[Verifier.Output()],
        )

    @classmethod
    def validate_inputs(cls, clip_arch, clip_weights, head_weights, download=False):
        from ..verifiers.aesthetic import BACKBONE_SOURCE, HEAD_SOURCE

        if (null := _null_choice(clip_arch=clip_arch, clip_weights=clip_weights, head_weights=head_weights)) is not True:
            return null

        return _all_missing(
            (downloads.check, clip_weights, "aesthetic verifier", BACKBONE_SOURCE, download, (downloads.CLIP_L_OPENAI,)),
            (downloads.check_arch, clip_weights, clip_arch, "aesthetic verifier"),
            (downloads.check, head_weights, "aesthetic verifier", HEAD_SOURCE, download, (downloads.AESTHETIC_HEAD,)))

    @classmethod
    def execute(cls, clip_arch, clip_weights, head_weights, download=False) -> io.NodeOutput:
        from ..verifiers.aesthetic import BACKBONE_SOURCE, HEAD_SOURCE, AestheticVerifier

        clip_path = downloads.resolve(clip_weights, "aesthetic verifier", BACKBONE_SOURCE, download,
                                      (downloads.CLIP_L_OPENAI,))
        head_path = downloads.resolve(head_weights, "aesthetic verifier", HEAD_SOURCE, download,
                                      (downloads.AESTHETIC_HEAD,))
        return io.NodeOutput(AestheticVerifier(clip_arch, clip_path, clip_weights, head_path, head_weights))


class LoadPreservationVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from ..verifiers.preservation import ASPECTS, BACKBONES

        return io.Schema(
            node_id="EACPS_LoadPreservationVerifier",
            display_name="Load Preservation / Identity Verifier (EACPS)",
            category=CATEGORY,
            description="How much of the reference image a candidate keeps: (1-w)*cosine of DINOv2 or CLIP "
                        "image embeddings + w*SSIM, 10 = identical. Needs a reference image.",
            inputs=[
                io.Combo.Input("aspect", options=list(ASPECTS), default="preservation",
                               tooltip="Name of the score (the EACPS edit preset weighs 'identity')."),
                io.Combo.Input("backbone", options=list(BACKBONES), default="dinov2",
                               tooltip="Embedding model for the semantic part; ssim_only needs no weights."),
                io.Combo.Input("dinov2_folder", options=downloads.options(
                    management.hf_folders(), downloads.DINOV2, "dinov2-base"),
                    tooltip="transformers DINOv2 folder in models/verifiers (backbone dinov2)."),
                io.Combo.Input("clip_arch", options=_arch_options("ViT-L-14-quickgelu"),
                               default="ViT-L-14-quickgelu", tooltip="open_clip architecture (backbone open_clip)."),
                io.Combo.Input("clip_weights", options=downloads.options(
                    management.weight_files(), downloads.CLIP_FILES, "open_clip_model.safetensors"),
                    tooltip="open_clip state dict in models/verifiers (backbone open_clip)."),
                io.Float.Input("ssim_weight", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="Share of SSIM in the score (pixel structure vs semantic similarity)."),
                _download_input("facebook/dinov2-small/-base/-large, laion/CLIP-ViT-H-14-laion2B-s32B-b79K, "
                                "timm/vit_large_patch14_clip_224.openai"),
            ],
            outputs=[Verifier.Output()],
        )

    @classmethod
    def validate_inputs(cls, backbone, dinov2_folder, clip_arch, clip_weights, download=False, aspect=""):
        from ..verifiers.clip_score import SOURCE
        from ..verifiers.preservation import ASPECTS, BACKBONES, DINO_SOURCE

        null = _null_choice(aspect=aspect, backbone=backbone, dinov2_folder=dinov2_folder, clip_arch=clip_arch,
                            clip_weights=clip_weights)
        if null is not True:
            return null
        # named here, ComfyUI leaves these choices to us (the guard too): refuse a typo before sampling
        for name, value, options in (("aspect", aspect, ASPECTS), ("backbone", backbone, BACKBONES)):
            if value and value not in options:  # "": not given here (aspect's default)
                return f"{name} = {value!r} is not one of: {', '.join(options)}"

        if backbone == "dinov2":
            return first_error((downloads.check, dinov2_folder, "preservation verifier", DINO_SOURCE, download,
                                downloads.DINOV2, True))
        if backbone == "open_clip":
            return first_error((downloads.check, clip_weights, "preservation verifier", SOURCE, download,
                                downloads.CLIP_FILES), (downloads.check_arch, clip_weights, clip_arch, "preservation verifier"))
        return True

    @classmethod
    def execute(cls, aspect, backbone, dinov2_folder, clip_arch, clip_weights, ssim_weight, download=False) -> io.NodeOutput:
        from ..verifiers.clip_score import SOURCE
        from ..verifiers.preservation import DINO_SOURCE, PreservationVerifier

        kwargs = {}
        if backbone == "dinov2":
            kwargs = dict(dino_folder=downloads.resolve(dinov2_folder, "preservation verifier", DINO_SOURCE, download,
                                                        downloads.DINOV2, folder=True),
                          dino_name=dinov2_folder)
        elif backbone == "open_clip":
            kwargs = dict(clip_arch=clip_arch, clip_name=clip_weights,
                          clip_path=downloads.resolve(clip_weights, "preservation verifier", SOURCE, download,
                                                      downloads.CLIP_FILES))
        return io.NodeOutput(PreservationVerifier(aspect, backbone, ssim_weight, **kwargs))


_ASPECTS_TOOLTIP = ("Comma-separated subset of prompt_adherence, realism, consistency, identity. consistency and "
                    "identity compare with the reference image (connect one where the verifier is used).")


def _check_aspects(aspects: str) -> bool | str:
    return first_error((parse_aspects, aspects))


class LoadVLMJudgeVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_LoadVLMJudgeVerifier",
            display_name="Load VLM Judge Verifier (EACPS)",
            category=CATEGORY,
            description="A local vision-language model (e.g. Qwen2.5-VL / Qwen3-VL) rates each aspect 0-9; the "
                        "score is the expected digit under the model's probabilities (one forward pass per "
                        "image and aspect, no text parsing), mapped to 0..10.",
            inputs=[
                io.Combo.Input("model_folder", options=downloads.options(
                    management.hf_folders(), downloads.VLM_JUDGES, "Qwen2.5-VL-3B-Instruct"),
                    tooltip="transformers VLM folder (with processor files) in models/verifiers."),
                io.String.Input("aspects", default="prompt_adherence, realism", tooltip=_ASPECTS_TOOLTIP),
                io.Int.Input("max_batch", default=4, min=1, max=64,
                             tooltip="Images per forward pass (VRAM vs speed)."),
                _download_input("Qwen/Qwen2.5-VL-3B-Instruct, Qwen/Qwen2.5-VL-7B-Instruct, Qwen/Qwen3-VL-4B-Instruct"),
            ],
            outputs=[Verifier.Output()],
        )

    @classmethod
    def validate_inputs(cls, model_folder, aspects, download=False):
        from ..verifiers.vlm_judge import SOURCE

        if (null := _null_choice(model_folder=model_folder)) is not True:
            return null

        return first_error((parse_aspects, aspects),
                           (downloads.check, model_folder, "VLM judge", SOURCE, download, downloads.VLM_JUDGES, True))

    @classmethod
    def execute(cls, model_folder, aspects, max_batch, download=False) -> io.NodeOutput:
        from ..verifiers.vlm_judge import SOURCE, VLMJudgeVerifier

        folder = downloads.resolve(model_folder, "VLM judge", SOURCE, download, downloads.VLM_JUDGES, folder=True)
        return io.NodeOutput(VLMJudgeVerifier(folder, model_folder, aspects, max_batch))


class LoadAPIJudgeVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_LoadAPIJudgeVerifier",
            display_name="Load API Judge Verifier (EACPS)",
            category=CATEGORY,
            description="Any OpenAI-compatible chat-completions endpoint rates each aspect 0..10 as JSON. The API "
                        "key is read from the environment variable you name; it is never stored in the workflow.",
            inputs=[
                io.String.Input("base_url", default="http://127.0.0.1:8000/v1",
                                tooltip="Endpoint base URL; /chat/completions is appended."),
                io.String.Input("model", default="gpt-4o-mini", tooltip="Model name sent to the endpoint."),
                io.String.Input("api_key_env", default="OPENAI_API_KEY",
                                tooltip="NAME of the environment variable holding the key (empty: no key)."),
                io.String.Input("aspects", default="prompt_adherence, realism", tooltip=_ASPECTS_TOOLTIP),
                io.Float.Input("timeout_s", default=60.0, min=0.1, max=600.0, step=0.1,
                               tooltip="Seconds to wait for one answer."),
                io.Int.Input("max_retries", default=4, min=0, max=10,
                             tooltip="Retries on HTTP 429/5xx and timeouts, with exponential backoff."),
                io.Float.Input("backoff_s", default=1.0, min=0.0, max=60.0, step=0.01,
                               tooltip="First retry delay; doubles each retry (Retry-After wins)."),
                io.Int.Input("concurrency", default=4, min=1, max=32, tooltip="Requests in flight at once."),
            ],
            outputs=[Verifier.Output()],
        )

    @classmethod
    def validate_inputs(cls, api_key_env, aspects):
        import os

        if api_key_env.strip() and not os.environ.get(api_key_env.strip()):
            return (f"API judge: the environment variable {api_key_env.strip()} is not set in ComfyUI's "
                    "environment; set it before starting ComfyUI, or leave api_key_env empty for no key")
        return _check_aspects(aspects)

    @classmethod
    def execute(cls, base_url, model, api_key_env, aspects, timeout_s, max_retries, backoff_s,
                concurrency) -> io.NodeOutput:
        from ..verifiers.api_judge import APIJudgeVerifier

        return io.NodeOutput(APIJudgeVerifier(base_url, model, api_key_env, aspects, timeout_s, max_retries,
                                              backoff_s, concurrency))


class LoadPickScoreVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_LoadPickScoreVerifier",
            display_name="Load PickScore Verifier (EACPS)",
            category=CATEGORY,
            description="PickScore_v1 (human preference, Pick-a-Pic): logit_scale*cos(image, prompt), "
                        "16..24 mapped to 0..10.",
            inputs=[
                io.Combo.Input("model_folder", options=downloads.options(
                    management.hf_folders(), (downloads.PICKSCORE,), "PickScore_v1"),
                    tooltip="transformers CLIP folder with processor files in models/verifiers."),
                _download_input("yuvalkirstain/PickScore_v1 + the processor files of "
                                "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
            ],
            outputs=[Verifier.Output()],
        )

    @classmethod
    def validate_inputs(cls, model_folder, download=False):
        from ..verifiers.pickscore import SOURCE

        if (null := _null_choice(model_folder=model_folder)) is not True:
            return null

        return first_error((downloads.check, model_folder, "PickScore verifier", SOURCE, download,
                            (downloads.PICKSCORE,), True))

    @classmethod
    def execute(cls, model_folder, download=False) -> io.NodeOutput:
        from ..verifiers.pickscore import SOURCE, PickScoreVerifier

        folder = downloads.resolve(model_folder, "PickScore verifier", SOURCE, download, (downloads.PICKSCORE,),
                                   folder=True)
        return io.NodeOutput(PickScoreVerifier(folder, model_folder))


class LoadHPSv2Verifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from ..verifiers.hpsv2 import DEFAULT_FILE

        return io.Schema(
            node_id="EACPS_LoadHPSv2Verifier",
            display_name="Load HPSv2 Verifier (EACPS)",
            category=CATEGORY,
            description="Human Preference Score v2/v2.1: cos(image, prompt) of the HPS-tuned open_clip ViT-H-14, "
                        "0.15..0.35 mapped to 0..10.",
            inputs=[
                io.Combo.Input("arch", options=_arch_options("ViT-H-14"), default="ViT-H-14",
                               tooltip="HPS v2/v2.1 are open_clip ViT-H-14."),
                io.Combo.Input("weights", options=downloads.options(
                    management.weight_files(), (downloads.HPS_V21, downloads.HPS_V2), DEFAULT_FILE),
                    tooltip=f"{DEFAULT_FILE} in models/verifiers."),
                _download_input("xswu/HPSv2"),
            ],
            outputs=[Verifier.Output()],
        )

    @classmethod
    def validate_inputs(cls, arch, weights, download=False):
        from ..verifiers.hpsv2 import SOURCE

        if (null := _null_choice(arch=arch, weights=weights)) is not True:
            return null

        hps = (downloads.HPS_V21, downloads.HPS_V2)
        return first_error((downloads.check, weights, "HPSv2 verifier", SOURCE, download, hps),
                           (downloads.check_arch, weights, arch, "HPSv2 verifier"))

    @classmethod
    def execute(cls, arch, weights, download=False) -> io.NodeOutput:
        from ..verifiers.hpsv2 import SOURCE, HPSv2Verifier

        path = downloads.resolve(weights, "HPSv2 verifier", SOURCE, download, (downloads.HPS_V21, downloads.HPS_V2))
        return io.NodeOutput(HPSv2Verifier(arch, path, weights))


class LoadImageRewardVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_LoadImageRewardVerifier",
            display_name="Load ImageReward Verifier (EACPS)",
            category=CATEGORY,
            description="ImageReward (BLIP reward model, prompt alignment + quality): its z-score, -2..2 mapped "
                        "to 0..10. Runs on transformers' BLIP; the image-reward package is not needed.",
            inputs=[
                io.Combo.Input("model_folder", options=downloads.options(
                    management.hf_folders(), (downloads.IMAGEREWARD,), "ImageReward"),
                    tooltip="Folder in models/verifiers with ImageReward.pt plus the BLIP config.json and "
                            "tokenizer files (Salesforce/blip-itm-large-coco)."),
                io.String.Input("checkpoint", default="ImageReward.pt",
                                tooltip="Checkpoint file name inside the folder."),
                _download_input("THUDM/ImageReward + the BLIP config/tokenizer of Salesforce/blip-itm-large-coco"),
            ],
            outputs=[Verifier.Output()],
        )

    @classmethod
    def validate_inputs(cls, model_folder, checkpoint, download=False):
        import os

        if (null := _null_choice(model_folder=model_folder, checkpoint=checkpoint)) is not True:
            return null

        from ..verifiers.imagereward import SOURCE

        known = (downloads.IMAGEREWARD,)
        found = first_error((downloads.check, model_folder, "ImageReward verifier", SOURCE, download, known, True))
        if found is not True:
            return found
        try:
            folder = management.resolve_folder(model_folder, "ImageReward verifier", SOURCE)
        except VerifierError:
            return True  # missing, and the download switch fetches it (checked above)
        fetchable = download and downloads.find(model_folder, known) is not None and checkpoint == "ImageReward.pt"
        if fetchable or os.path.isfile(os.path.join(folder, checkpoint)):
            return True
        return (management.missing_message("ImageReward verifier", f"{model_folder}/{checkpoint}", SOURCE) + "."
                + downloads.missing_hint(model_folder, known))

    @classmethod
    def execute(cls, model_folder, checkpoint, download=False) -> io.NodeOutput:
        import os

        from ..verifiers.imagereward import SOURCE, ImageRewardVerifier

        known = (downloads.IMAGEREWARD,)
        folder = downloads.resolve(model_folder, "ImageReward verifier", SOURCE, download, known, folder=True)
        if download and not os.path.isfile(os.path.join(folder, checkpoint)) and downloads.find(model_folder, known):
            folder = downloads.fetch(downloads.IMAGEREWARD, "ImageReward verifier")
        return io.NodeOutput(ImageRewardVerifier(folder, model_folder, checkpoint))


class LoadTechnicalVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_LoadTechnicalVerifier",
            display_name="Load Technical Verifier (EACPS)",
            category=CATEGORY,
            description=(
                "Technical image quality without a model: 'sharpness' (log variance of the Laplacian, "
                "-5 -> 0 and -1 -> 10) and 'exposure' (unclipped fraction x mid-grey balance, 0..1 -> 0..10). "
                "Pure noise counts as sharp: pair it with a content verifier."
            ),
            inputs=[
                io.Int.Input("size", default=512, min=0, max=8192,
                             tooltip="Longer side the image is resized to before measuring (0: native), so "
                                     "scores compare across resolutions."),
            ],
            outputs=[Verifier.Output(display_name="verifier", tooltip="The verifier, for EACPS Verifier Score.")],
        )

    @classmethod
    def execute(cls, size) -> io.NodeOutput:
        return io.NodeOutput(TechnicalQualityVerifier(size=int(size)))



NODES = [LoadTechnicalVerifier, LoadClipScoreVerifier, LoadImageRewardVerifier, LoadPickScoreVerifier, LoadHPSv2Verifier, LoadAestheticVerifier, LoadPreservationVerifier, LoadVLMJudgeVerifier,
         LoadAPIJudgeVerifier]
