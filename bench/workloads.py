"""API-format prompts for the benchmark's three methods, on the tiny CPU model or a real
architecture with random weights. Built on tests/host/graphs.py (same node ids), so the EACPS
graph is exactly the one the tests run.

(a) EACPS: SeedSearchGlobal(K_global) -> score -> potential -> EliteSelect(M) -> LocalSeedRefine
    (K_local) -> score -> potential -> EliteSelect(1), technical verifier, sub-batch S.
(b) stock, one at a time: N x (KSampler on a batch-1 latent + VAEDecode).
(c) stock, batched: KSampler on latent batches + VAEDecode, one node pair per batch.
Every method ends in the test pack's Capture node (an output node that only stores a reference),
so no PNG encoding is timed and all three pay the same (zero) output cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from host.graphs import capture, sampler_settings, two_stage_prompt


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str | None  # None: the tiny CPU model; else sd15 / sdxl / flux (EACPSTest_ArchModel)
    width: int
    height: int
    steps: int
    cfg: float
    dtype: str = "float32"
    flux_blocks: int = 0  # 0: the real depth

    @property
    def latent_channels(self) -> int:
        return 16 if self.arch == "flux" else 4

    def describe(self) -> dict:
        return {**asdict(self), "latent_channels": self.latent_channels, "sampler_name": "euler",
                "scheduler": "normal", "vae": f"TAESD-shaped, {self.latent_channels} latent channels, random weights"}


TINY = ModelSpec("tiny", None, 64, 64, steps=4, cfg=5.0)
GPU_MODELS = {
    "sd15": ModelSpec("sd15", "sd15", 512, 512, steps=20, cfg=7.0, dtype="float16"),
    "sdxl": ModelSpec("sdxl", "sdxl", 1024, 1024, steps=20, cfg=5.0, dtype="float16"),
    "flux": ModelSpec("flux", "flux", 1024, 1024, steps=10, cfg=1.0, dtype="bfloat16"),
}
# --smoke: the real-architecture code path, as small as it goes, on any device.
SMOKE_MODELS = {
    "sd15": ModelSpec("sd15-smoke", "sd15", 64, 64, steps=1, cfg=7.0, dtype="float16"),
    "flux": ModelSpec("flux-smoke", "flux", 64, 64, steps=1, cfg=1.0, dtype="bfloat16", flux_blocks=1),
}

# N = K_global + M * K_local. The splits for 8, 20, 50; 2 and 4 for the quick/smoke modes.
SPLITS = {2: (1, 1, 1), 4: (2, 1, 2), 8: (4, 1, 4), 20: (8, 3, 4), 50: (18, 4, 8)}


def split(n: int) -> tuple[int, int, int]:
    if n in SPLITS:
        return SPLITS[n]
    k_local = 4
    m = max(1, (3 * n) // 20)  # about 40 % global, 60 % children, as 8 + 3*4 = 20
    k_global = n - m * k_local
    if k_global < m:
        raise ValueError(f"no EACPS split for N={n}; use one of {sorted(SPLITS)} or N >= 8")
    return k_global, m, k_local


def chunks(n: int, size: int) -> list[int]:
    return [min(size, n - i) for i in range(0, n, size)]


def eacps_schedule(n: int, sub_batch: int) -> list[int]:
    """The sampler-call batch sizes EACPS uses: the global stage and the children in sub-batches."""
    k_global, m, k_local = split(n)
    return chunks(k_global, sub_batch) + chunks(m * k_local, sub_batch)


def model_nodes(spec: ModelSpec, batch_size: int = 1, text: str = "a red apple") -> dict:
    if spec.arch is None:
        model = {"class_type": "EACPSTest_TinyModel", "inputs": {"weights_seed": 0}}
        pos = {"class_type": "EACPSTest_TinyConditioning", "inputs": {"text": text}}
        neg = {"class_type": "EACPSTest_TinyConditioning", "inputs": {"text": ""}}
    else:
        model = {"class_type": "EACPSTest_ArchModel",
                 "inputs": {"arch": spec.arch, "dtype": spec.dtype, "flux_blocks": spec.flux_blocks}}
        pos = {"class_type": "EACPSTest_ArchConditioning", "inputs": {"arch": spec.arch, "text": text}}
        neg = {"class_type": "EACPSTest_ArchConditioning", "inputs": {"arch": spec.arch, "text": ""}}
    return {
        "model": model, "pos": pos, "neg": neg,
        "latent": latent_node(spec, batch_size),
        "vae": {"class_type": "EACPSTest_TinyVAEChannels",
                "inputs": {"weights_seed": 0, "channels": spec.latent_channels}},
    }


def latent_node(spec: ModelSpec, batch_size: int) -> dict:
    kind = "EmptySD3LatentImage" if spec.latent_channels == 16 else "EmptyLatentImage"
    return {"class_type": kind, "inputs": {"width": spec.width, "height": spec.height, "batch_size": batch_size}}


def settings(spec: ModelSpec, seed: int) -> dict:
    return sampler_settings(seed=seed, steps=spec.steps, cfg=spec.cfg)


def eacps_prompt(spec: ModelSpec, n: int, sub_batch: int, seed: int) -> dict:
    k_global, m, k_local = split(n)
    p = two_stage_prompt(k_global=k_global, m=m, k_local=k_local, max_sub_batch=sub_batch, captures=False,
                         **settings(spec, seed))
    p.update(model_nodes(spec))
    del p["save"]  # PreviewImage would time PNG encoding; the baselines have none either
    p["out"] = capture(["elite2", 1], "bench_best")
    return p


SAMPLED_EACPS = ("global", "local")


def stock_prompt(spec: ModelSpec, batches: list[int], seed: int) -> tuple[dict, list[str]]:
    """One KSampler + VAEDecode per entry of ``batches`` (its latent batch size). Returns the prompt
    and the KSampler node ids (to check that each actually ran)."""
    p = model_nodes(spec)
    samplers = []
    for i, size in enumerate(batches):
        latent, ks, dec = f"latent{i}", f"ks{i}", f"dec{i}"
        p[latent] = latent_node(spec, size)
        p[ks] = {"class_type": "KSampler",
                 "inputs": {"model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                            "latent_image": [latent, 0], **settings(spec, seed + i)}}
        p[dec] = {"class_type": "VAEDecode", "inputs": {"samples": [ks, 0], "vae": ["vae", 0]}}
        p[f"out{i}"] = capture([dec, 0], f"bench_stock{i}")
        samplers.append(ks)
    del p["latent"]
    return p, samplers
