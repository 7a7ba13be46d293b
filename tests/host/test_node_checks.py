"""Every node's validate_inputs and the one-node searches' pre-sampling checks, called directly
(ComfyUI skips its own min/max checks for the inputs a validate_inputs names, so these are the only
checks those inputs get). Messages are matched on the words that tell the user what to change."""

from __future__ import annotations

import math

import pytest
import torch

pytestmark = pytest.mark.host

SAMPLING_OK = dict(seed=0, k_global=1, steps=1, max_sub_batch=1, denoise=1.0, sampler_name="euler",
                   scheduler="normal")


@pytest.mark.parametrize("field, value, match", [
    ("seed", -1, "seed = -1: smaller than min 0"),  # the range guard (nodes/checks.py) answers first
    ("seed", 2**64, "seed = 18446744073709551616"),
    ("k_global", 0, "k_global = 0: smaller than min 1"),
    ("steps", 0, "steps = 0: smaller than min 1"),
    ("max_sub_batch", 0, "max_sub_batch = 0: smaller than min 1"),
    ("denoise", 0.0, "denoise = 0.0: use a value in (0, 1]"),
    ("denoise", 1.01, "denoise = 1.01"),
    ("sampler_name", "nope", "sampler_name = 'nope' is not one of this ComfyUI's: euler"),
    ("scheduler", "nope", "scheduler = 'nope' is not one of this ComfyUI's: "),
])
def test_seed_search_global_checks(comfy, field, value, match):
    from eacps.nodes.sampling import SeedSearchGlobal

    assert SeedSearchGlobal.validate_inputs(**SAMPLING_OK) is True
    assert SeedSearchGlobal.validate_inputs(**{**SAMPLING_OK, "seed": 2**64 - 1, "denoise": 0.01}) is True
    msg = SeedSearchGlobal.validate_inputs(**{**SAMPLING_OK, field: value})
    assert isinstance(msg, str) and match in msg, msg
    # a linked input (None at validation time) is checked at execution instead
    assert SeedSearchGlobal.validate_inputs(**{**SAMPLING_OK, field: None}) is True


def test_refine_select_and_potential_checks(comfy):
    from eacps.nodes.sampling import LocalSeedRefine
    from eacps.nodes.scoring import WeightedPotential
    from eacps.nodes.selection import EliteSelect

    assert LocalSeedRefine.validate_inputs(4, "slerp", 0.6, 0.5) is True
    assert LocalSeedRefine.validate_inputs(4, "seed_offset", 0.0, 1.0) is True  # no radius for seed_offset
    assert LocalSeedRefine.validate_inputs(None, None, None, None) is True
    for args, match in [((0, "slerp", 0.6, 0.5), "k_local = 0"), ((1, "jitter", 0.6, 0.5), "mode = 'jitter'"),
                        ((1, "sphere", 0.0, 0.5), "strength = 0.0 for mode 'sphere'"),
                        ((1, None, 1.5, 0.5), "strength = 1.5: bigger than max 1.0"),
                        ((1, "slerp", 0.5, 0.0), "anneal = 0.0")]:
        msg = LocalSeedRefine.validate_inputs(*args)
        assert isinstance(msg, str) and match in msg, (args, msg)
    assert EliteSelect.validate_inputs(1) is True and EliteSelect.validate_inputs(None) is True
    assert "m = 0" in EliteSelect.validate_inputs(0)
    assert WeightedPotential.validate_inputs("a=1\n# b=2") is True and WeightedPotential.validate_inputs(None) is True
    assert "none given" in WeightedPotential.validate_inputs("# nothing")


def test_one_node_search_checks(comfy):
    from eacps.nodes.search_nodes import BestOfN, Search

    ok = dict(seed=1, steps=4, denoise=1.0, max_sub_batch=8, weights="sharpness=1", k_global=8, m=3, k_local=4,
              generations=1, mode="slerp", strength=0.6, anneal=0.5, sampler_name="euler", scheduler="normal")
    assert Search.validate_inputs(**ok) is True
    assert Search.validate_inputs(**{**ok, "m": 8}) is True and Search.validate_inputs(**{**ok, "m": 8, "k_global": None}) is True
    assert Search.validate_inputs(**{**ok, "mode": "seed_offset", "strength": 0.0}) is True
    for change, match in [({"m": 9}, "M = 9 elites, but only K_global = 8"), ({"generations": 0}, "generations = 0"),
                          ({"k_local": 0}, "k_local = 0"), ({"k_global": 0}, "k_global = 0"), ({"m": 0}, "m = 0"),
                          ({"strength": 0.0}, "strength = 0.0"), ({"anneal": 1.5}, "anneal = 1.5"),
                          ({"mode": "jitter"}, "mode = 'jitter'"), ({"weights": "x=-1"}, "use a finite number >= 0"),
                          ({"steps": 0}, "steps = 0"), ({"denoise": 0.0}, "denoise = 0.0"),
                          ({"sampler_name": "nope"}, "sampler_name = 'nope'")]:
        msg = Search.validate_inputs(**{**ok, **change})
        assert isinstance(msg, str) and match in msg, (change, msg)
    bon = dict(seed=1, steps=4, denoise=1.0, max_sub_batch=8, weights="sharpness=1", n=20, sampler_name="euler",
               scheduler="normal")
    assert BestOfN.validate_inputs(**bon) is True
    assert "n = 0" in BestOfN.validate_inputs(**{**bon, "n": 0})
    assert "max_sub_batch = 0" in BestOfN.validate_inputs(**{**bon, "max_sub_batch": 0})


def test_verifiers_are_checked_before_sampling(comfy):
    from eacps.nodes.search_nodes import _connected, check_before_sampling
    from eacps.search.pool import SearchError
    from eacps.verifiers.preservation import PreservationVerifier
    from eacps.verifiers.technical import TechnicalQualityVerifier

    tech, tech_again, pres = TechnicalQualityVerifier(64), TechnicalQualityVerifier(64), PreservationVerifier(
        "identity", "ssim_only", 1.0)
    with pytest.raises(SearchError, match="connect at least one verifier to 'verifier_1'"):
        _connected({"verifier_1": None, "verifier_2": None})
    assert _connected({"verifier_2": tech, "verifier_4": pres}) == [tech, pres]
    with pytest.raises(SearchError, match="technical-v1-size64 is connected twice"):
        check_before_sampling([tech, tech_again], "sharpness=1", "p", None)
    with pytest.raises(SearchError, match="needs a reference image: connect one to 'reference'"):
        check_before_sampling([tech, pres], "sharpness=1", "p", None)
    with pytest.raises(SearchError, match=r"weights name \['realism'\], which none of the connected verifiers produce; "
                                          r"available: exposure, identity, preservation#1.identity, preservation.identity, sharpness, "):
        check_before_sampling([tech, pres], "realism=1", "p", torch.zeros(1, 8, 8, 3))
    check_before_sampling([tech, pres], "identity=1, technical.sharpness=2", "p", torch.zeros(1, 8, 8, 3))


def test_api_judge_loader_checks_the_key_variable_and_aspects(comfy, monkeypatch):
    from eacps.nodes.loaders import LoadAPIJudgeVerifier

    monkeypatch.delenv("EACPS_UNSET_KEY", raising=False)
    msg = LoadAPIJudgeVerifier.validate_inputs("EACPS_UNSET_KEY", "realism")
    assert "environment variable EACPS_UNSET_KEY is not set" in msg
    monkeypatch.setenv("EACPS_SET_KEY", "k")
    assert LoadAPIJudgeVerifier.validate_inputs(" EACPS_SET_KEY ", "realism") is True
    assert LoadAPIJudgeVerifier.validate_inputs("", "realism, identity") is True
    assert "unknown judge aspect 'beauty'" in LoadAPIJudgeVerifier.validate_inputs("", "beauty")


def test_every_nodes_schema_defaults_pass_its_own_checks(comfy, monkeypatch):
    """A node placed from the menu, widgets untouched, must validate: a default outside its own
    min/max or choices, or one its validate_inputs refuses, would greet every user with an error.
    (The loaders of model files are left out: their choices are the files this host has.)"""
    from comfy_api.latest import io

    from eacps.nodes import NODE_MODULES, loaders

    nodes = [n for module in NODE_MODULES if module is not loaders for n in module.NODES]
    nodes += [loaders.LoadAPIJudgeVerifier, loaders.LoadTechnicalVerifier]
    checked = []
    for node in nodes:
        schema = node.define_schema()
        values = {}
        for inp in schema.inputs:
            if isinstance(inp, io.WidgetInput):  # the frontend shows a combo's first option when it has no default
                default = inp.default if inp.default is not None or not isinstance(inp, io.Combo.Input) else inp.options[0]
                if default is not None:
                    values[inp.id] = default
        if "api_key_env" in values:  # the judge checks that the variable it names is set
            monkeypatch.setenv(values["api_key_env"], "placeholder")
        verdict = node.validate_inputs(**values)
        assert verdict is True, (schema.node_id, values, verdict)
        checked.append(schema.node_id)
    assert {"EACPS_Search", "EACPS_BestOfN", "EACPS_SeedSearchGlobal", "EACPS_Workers",
            "EACPS_LoadAPIJudgeVerifier"} <= set(checked), checked
    # the loaders that need no file also build their verifier from the defaults (no request is sent)
    for node in (loaders.LoadAPIJudgeVerifier, loaders.LoadTechnicalVerifier):
        values = {inp.id: inp.default for inp in node.define_schema().inputs if inp.default is not None}
        assert node.execute(**values).result[0].aspects, node


def test_every_choice_the_editor_offers_passes_the_nodes_own_checks(comfy, monkeypatch):
    """Each option of each fixed-list combo (modes, prune kinds, samplers, schedulers, ...), with the
    other widgets at their defaults: a list that offers a value the node then refuses (a renamed
    mode) would fail the user who picks it. (The file loaders' lists are the files this host has.)"""
    from comfy_api.latest import io

    from eacps.nodes import NODE_MODULES, loaders

    monkeypatch.setenv("OPENAI_API_KEY", "placeholder")
    nodes = [n for module in NODE_MODULES if module is not loaders for n in module.NODES]
    nodes += [loaders.LoadAPIJudgeVerifier, loaders.LoadTechnicalVerifier]
    offered = 0
    for node in nodes:
        inputs = [inp for inp in node.define_schema().inputs if isinstance(inp, io.WidgetInput)]
        defaults = {inp.id: inp.default if inp.default is not None or not isinstance(inp, io.Combo.Input)
                    else inp.options[0] for inp in inputs}
        defaults = {k: v for k, v in defaults.items() if v is not None}
        for inp in inputs:
            if isinstance(inp, io.Combo.Input):
                for option in inp.options:
                    verdict = node.validate_inputs(**{**defaults, inp.id: option})
                    assert verdict is True, (node.__name__, inp.id, option, verdict)
                    offered += 1
    assert offered >= 100, offered  # samplers and schedulers of four nodes, modes, prune kinds


def test_guarding_a_node_twice_changes_nothing(comfy):
    from eacps.nodes.checks import guard
    from eacps.nodes.sampling import SeedSearchGlobal

    validate, execute = SeedSearchGlobal.__dict__["validate_inputs"], SeedSearchGlobal.__dict__["execute"]
    assert guard(SeedSearchGlobal) is SeedSearchGlobal
    assert SeedSearchGlobal.__dict__["validate_inputs"] is validate and SeedSearchGlobal.__dict__["execute"] is execute


def test_a_choice_outside_the_list_is_named_with_the_options(comfy):
    from comfy_api.latest import io

    from eacps.nodes.checks import widget_problem

    few = io.Combo.Input("backbone", options=["dinov2", "open_clip", "ssim_only"])
    assert widget_problem(few, "clip", resolved=False, own=False) == (
        "backbone = 'clip' is not one of: dinov2, open_clip, ssim_only")
    assert widget_problem(few, "clip", resolved=False, own=True) is None  # the node's own check explains it
    many = io.Combo.Input("file", options=[f"f{i}" for i in range(25)])
    assert widget_problem(many, "x", resolved=True, own=False) == (
        "file = 'x' is not one of: " + ", ".join(f"f{i}" for i in range(20)) + " ...")


def test_every_float_widget_shows_its_step_default_and_range_exactly_in_the_editor(comfy):
    """ComfyUI's frontend (useFloatWidget) gives a FLOAT widget precision p = max(0, -floor(log10(step)))
    decimals: it shows values with p decimals, snaps a changed value to multiples of 10^-p (p > 0) and
    moves it by ``step`` per arrow click. So step, default, min and max must have at most p decimals:
    with step 1.1 (p = 0) a 0.1 minimum shows as 0 and the arrows move 60 to 61.1, shown as 61."""
    from comfy_api.latest import io

    from eacps.nodes import NODE_MODULES

    checked = 0
    for node in (n for module in NODE_MODULES for n in module.NODES):
        for inp in node.define_schema().inputs:
            if not isinstance(inp, io.Float.Input):
                continue
            assert inp.step is not None and inp.step > 0, (node.__name__, inp.id)
            precision = max(0, -math.floor(math.log10(inp.step)))
            for what in ("step", "default", "min", "max"):
                value = getattr(inp, what)
                if value is not None:
                    assert round(value, precision) == value, (node.__name__, inp.id, what, value, inp.step)
            checked += 1
    assert checked >= 10, checked
