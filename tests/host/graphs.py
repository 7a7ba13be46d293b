"""API-format prompt builders for EACPS graphs on the tiny test models (tests, demo, benchmarks).

Node ids are fixed strings so tests can read outputs: "model", "pos", "neg", "latent", "vae",
"global", "verifier", "score1", "pot1", "elite1", "local", "score2", "pot2", "elite2".
"""

from __future__ import annotations


def base_nodes(width: int = 64, height: int = 64, batch_size: int = 1, text: str = "a red apple") -> dict:
    return {
        "model": {"class_type": "EACPSTest_TinyModel", "inputs": {"weights_seed": 0}},
        "pos": {"class_type": "EACPSTest_TinyConditioning", "inputs": {"text": text}},
        "neg": {"class_type": "EACPSTest_TinyConditioning", "inputs": {"text": ""}},
        "latent": {"class_type": "EmptyLatentImage",
                   "inputs": {"width": width, "height": height, "batch_size": batch_size}},
        "vae": {"class_type": "EACPSTest_TinyVAE", "inputs": {"weights_seed": 0}},
    }


def lab_base_nodes(text: str, batch_size: int = 1) -> dict:
    """base_nodes on the lab world's trained model (lab/comfy_lab_pack): same node ids, 64x64."""
    return {
        "model": {"class_type": "EACPSLab_LoadModel", "inputs": {}},
        "pos": {"class_type": "EACPSLab_TextEncode", "inputs": {"text": text}},
        "neg": {"class_type": "EACPSLab_TextEncode", "inputs": {"text": ""}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": batch_size}},
        "vae": {"class_type": "EACPSLab_LoadVAE", "inputs": {}},
    }


def sampler_settings(seed: int = 1, steps: int = 4, cfg: float = 5.0, sampler_name: str = "euler",
                     scheduler: str = "normal", denoise: float = 1.0) -> dict:
    return {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler_name,
            "scheduler": scheduler, "denoise": denoise}


def global_node(k_global: int = 8, max_sub_batch: int = 8, **settings) -> dict:
    return {
        "class_type": "EACPS_SeedSearchGlobal",
        "inputs": {
            "model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0],
            "latent_image": ["latent", 0], "vae": ["vae", 0], "k_global": k_global,
            "max_sub_batch": max_sub_batch, **sampler_settings(**settings),
        },
    }


def capture(source: list, key: str) -> dict:
    return {"class_type": "EACPSTest_Capture", "inputs": {"value": source, "key": key}}


def two_stage_prompt(k_global: int = 8, m: int = 3, k_local: int = 4, mode: str = "slerp",
                     strength: float = 0.6, anneal: float = 0.5, max_sub_batch: int = 8,
                     weights: str = "sharpness=1.0\nexposure=1.0", prompt_text: str = "a red apple",
                     captures: bool = True, **settings) -> dict:
    """Global -> Score -> Potential -> Elite(M) -> Local(K_local) -> Score -> Potential -> Elite(1)."""
    p = base_nodes(text=prompt_text)
    p.update({
        "global": global_node(k_global=k_global, max_sub_batch=max_sub_batch, **settings),
        "verifier": {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 64}},
        "score1": {"class_type": "EACPS_VerifierScore",
                   "inputs": {"candidates": ["global", 0], "verifier": ["verifier", 0], "prompt": prompt_text}},
        "pot1": {"class_type": "EACPS_WeightedPotential", "inputs": {"candidates": ["score1", 0], "weights": weights}},
        "elite1": {"class_type": "EACPS_EliteSelect", "inputs": {"candidates": ["pot1", 0], "m": m}},
        "local": {"class_type": "EACPS_LocalSeedRefine",
                  "inputs": {"candidates": ["elite1", 0], "k_local": k_local, "mode": mode,
                             "strength": strength, "anneal": anneal}},
        "score2": {"class_type": "EACPS_VerifierScore",
                   "inputs": {"candidates": ["local", 0], "verifier": ["verifier", 0], "prompt": prompt_text}},
        "pot2": {"class_type": "EACPS_WeightedPotential", "inputs": {"candidates": ["score2", 0], "weights": weights}},
        "elite2": {"class_type": "EACPS_EliteSelect", "inputs": {"candidates": ["pot2", 0], "m": 1}},
        "save": {"class_type": "PreviewImage", "inputs": {"images": ["elite2", 1]}},
    })
    if captures:
        p["cap_pool"] = capture(["elite2", 0], "pool")
        p["cap_latent"] = capture(["elite2", 2], "latent")
        p["cap_noise"] = capture(["elite2", 3], "noise")
        p["cap_seed"] = capture(["elite2", 4], "seed")
        p["cap_report"] = capture(["elite2", 5], "report")
    return p


def ksampler_node(seed: int, latent: list | None = None, **settings) -> dict:
    s = sampler_settings(seed=seed, **settings)
    return {"class_type": "KSampler",
            "inputs": {"model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                       "latent_image": latent or ["latent", 0], **s}}


def custom_advanced_nodes(noise: list, steps: int = 4, cfg: float = 5.0, sampler_name: str = "euler",
                          scheduler: str = "normal", denoise: float = 1.0) -> dict:
    """Stock SamplerCustomAdvanced fed by ``noise`` (a NOISE link), same model/conditioning/latent."""
    return {
        "sca_guider": {"class_type": "CFGGuider",
                       "inputs": {"model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0], "cfg": cfg}},
        "sca_sampler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler_name}},
        "sca_sigmas": {"class_type": "BasicScheduler",
                       "inputs": {"model": ["model", 0], "scheduler": scheduler, "steps": steps, "denoise": denoise}},
        "sca": {"class_type": "SamplerCustomAdvanced",
                "inputs": {"noise": noise, "guider": ["sca_guider", 0], "sampler": ["sca_sampler", 0],
                           "sigmas": ["sca_sigmas", 0], "latent_image": ["latent", 0]}},
    }


def one_node_inputs(weights: str = "sharpness=1.0\nexposure=1.0", prompt_text: str = "a red apple",
                    max_sub_batch: int = 8, **settings) -> dict:
    """The inputs EACPS_Search and EACPS_BestOfN share, wired to base_nodes and the "verifier" node."""
    return {
        "model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
        "vae": ["vae", 0], **sampler_settings(**settings), "verifier_1": ["verifier", 0], "weights": weights,
        "prompt": prompt_text, "max_sub_batch": max_sub_batch,
    }


def search_node(k_global: int = 8, m: int = 3, k_local: int = 4, mode: str = "slerp", strength: float = 0.6,
                generations: int = 1, anneal: float = 0.5, **kwargs) -> dict:
    return {"class_type": "EACPS_Search",
            "inputs": {**one_node_inputs(**kwargs), "k_global": k_global, "m": m, "k_local": k_local, "mode": mode,
                       "strength": strength, "generations": generations, "anneal": anneal}}


def best_of_n_node(n: int = 20, prune_steps: str | None = "", **kwargs) -> dict:
    """EACPS_BestOfN, by default as the plain baseline (prune_steps ""); prune_steps=None leaves the
    input out, so the node's own default screening applies."""
    inputs = {**one_node_inputs(**kwargs), "n": n}
    if prune_steps is not None:
        inputs["prune_steps"] = prune_steps
    return {"class_type": "EACPS_BestOfN", "inputs": inputs}


def one_node_prompt(node: dict, key: str = "one", captures: bool = True) -> dict:
    """base_nodes + technical verifier + ``node`` (EACPS_Search or EACPS_BestOfN) under ``key``."""
    p = base_nodes()
    p["verifier"] = {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 64}}
    p[key] = node
    if captures:
        for slot, name in enumerate(("image", "latent", "noise", "seed", "grid", "report")):
            p[f"cap_{key}_{name}"] = capture([key, slot], f"{key}_{name}")
    return p
