"""The lab world's judges (lab/judges.py, lab/comfy_lab_pack/judge_nodes.py).

- E passes ground-truth renders of held-out prompts and fails renders of their near misses; the
  expected verdicts come from the renderer's own objects and ``world.satisfies``, not from E.
- V ranks renders of a held-out prompt above renders of its near misses.
- Both load through ``EACPSLab_LoadJudge`` in real ComfyUI prompts and score with
  EACPS_VerifierScore and EACPS_Search; a text outside the world's grammar fails the prompt loudly.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from host.graphs import base_nodes, capture, global_node, one_node_prompt, search_node

pytestmark = pytest.mark.host

LOADER = "EACPSLab_LoadJudge"
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


@pytest.fixture(scope="module")
def judge_module(comfy):
    return sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS[LOADER].__module__]


@pytest.fixture(scope="module")
def world(judge_module):
    return judge_module.judges.world


def _near_misses(world, prompt: str) -> list[str]:
    """Relation reversed, colours swapped (if they differ), first shape changed."""
    s = world.parse_prompt(prompt)
    (c1, s1), (c2, s2) = s.obj1, s.obj2
    out = [world.Scene(s.obj1, OPPOSITE[s.relation], s.obj2)]
    if c1 != c2:
        out.append(world.Scene((c2, s1), s.relation, (c1, s2)))
    out += [world.Scene((c1, t), s.relation, (c2, s2)) for t in world.SHAPES if t != s1 and (c1, t) != (c2, s2)][:1]
    return [world.prompt_of(x) for x in out]


@pytest.fixture(scope="module")
def held_out_cases(world):
    """(image [1, 64, 64, 3], prompt, expected) for 40 held-out prompts: one render of each prompt
    and one of a near miss, the expectation from world.satisfies on the renderer's objects."""
    rng = np.random.default_rng(7)
    prompts = world.benchmark_prompts()
    cases = []
    for i in rng.choice(len(prompts), 40, replace=False):
        prompt = prompts[int(i)]
        misses = _near_misses(world, prompt)
        for source in (prompt, misses[int(rng.integers(len(misses)))]):
            image, objects = world.render_scene(source, rng)
            cases.append((torch.from_numpy(image)[None].float() / 255, prompt, world.satisfies(objects, prompt)))
    assert sum(c[2] for c in cases) == 40  # the prompt's renders pass, the near misses' do not
    return cases


def test_judge_e_is_right_on_held_out_renders(judge_module, held_out_cases):
    judge = judge_module.load_judge("E")
    verdicts = [bool(judge.score(img, prompt).scores["judge_e"][0] == 10.0) for img, prompt, _ in held_out_cases]
    wrong = [(p, exp) for (_, p, exp), v in zip(held_out_cases, verdicts, strict=True) if v != exp]
    accuracy = 1 - len(wrong) / len(held_out_cases)
    assert accuracy >= 0.95, f"E accuracy {accuracy:.3f} on held-out renders; wrong on {wrong}"
    assert all(v for (_, _, exp), v in zip(held_out_cases, verdicts, strict=True) if exp) or accuracy >= 0.95


def test_judge_e_detects_the_rendered_objects(judge_module, world):
    rng = np.random.default_rng(11)
    judges = judge_module.judges
    net = judge_module.load_judge("E").net
    hits = 0
    prompts = world.benchmark_prompts()[:20]
    for prompt in prompts:
        image, objects = world.render_scene(prompt, rng)
        found = judges.e_objects(net, torch.from_numpy(image)[None].float() / 255)[0]
        same = sorted((o.colour, o.shape) for o in found) == sorted((o.colour, o.shape) for o in objects)
        close = same and all(min(abs(f.x - o.x) + abs(f.y - o.y) for f in found) < 2.0 for o in objects)
        hits += close
    assert hits >= 19, f"E found the rendered objects (classes, centroids within 2 px) in {hits} of 20 renders"


def test_judge_v_ranks_prompt_renders_above_near_misses(judge_module, held_out_cases):
    judge = judge_module.load_judge("V")
    scores = [float(judge.score(img, prompt).scores["judge_v"][0]) for img, prompt, _ in held_out_cases]
    pos = np.array([s for s, c in zip(scores, held_out_cases, strict=True) if c[2]])
    neg = np.array([s for s, c in zip(scores, held_out_cases, strict=True) if not c[2]])
    auc = float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
    assert auc >= 0.85, f"V ranks a render of the prompt above a near miss with probability {auc:.3f}"
    assert 0.0 <= min(scores) and max(scores) <= 10.0
    assert len(set(np.round(scores, 6))) > len(scores) // 2  # continuous, so the search can rank by it


def _judge_pool_prompt(text: str) -> dict:
    p = base_nodes(text=text)
    p.update({
        "global": global_node(k_global=3),
        "judge_v": {"class_type": LOADER, "inputs": {"which": "V"}},
        "judge_e": {"class_type": LOADER, "inputs": {"which": "E"}},
        "score_v": {"class_type": "EACPS_VerifierScore",
                    "inputs": {"candidates": ["global", 0], "verifier": ["judge_v", 0], "prompt": text}},
        "score_e": {"class_type": "EACPS_VerifierScore",
                    "inputs": {"candidates": ["score_v", 0], "verifier": ["judge_e", 0], "prompt": text}},
        "cap_pool": capture(["score_e", 0], "judge_pool"),
    })
    return p


def test_judges_score_a_pool_through_their_nodes(comfy, captured, judge_module):
    text = "a red circle left of a blue square"
    comfy.run(_judge_pool_prompt(text))
    pool = captured["judge_pool"]
    assert [v.kind for v in pool.verifiers] == ["lab_judge_v", "lab_judge_e"]
    images = torch.cat([c.image for c in pool.candidates])
    v = judge_module.judges.v_logits(judge_module.load_judge("V").net, images, text)
    for i, c in enumerate(pool.candidates):
        score_v = next(val for _, a, val in c.scores if a == "judge_v")
        score_e = next(val for _, a, val in c.scores if a == "judge_e")
        assert score_v == pytest.approx(10 / (1 + np.exp(-float(v[i]))), abs=1e-6)
        assert score_e in (0.0, 10.0)


def test_judge_v_drives_the_one_node_search(comfy, captured):
    text = "a green triangle above a yellow circle"
    p = one_node_prompt(search_node(k_global=3, m=1, k_local=2, weights="judge_v=1.0", prompt_text=text))
    p["pos"]["inputs"]["text"] = text
    p["verifier"] = {"class_type": LOADER, "inputs": {"which": "V"}}
    comfy.run(p)
    report = json.loads(captured["one_report"])
    scores = {c["id"]: c["scores"]["judge_v"] for c in report["candidates"]}
    assert len(scores) == 5
    assert report["winner"] == max(scores, key=lambda k: (scores[k], -k))


def test_judges_refuse_text_outside_the_world(comfy):
    result = comfy.run(_judge_pool_prompt("a red apple"), expect_success=False)
    assert not result.success
    assert "lab world's prompts" in result.error()
