"""Noise recipes: exact plain seeds, and the statistics of each neighbourhood mode."""

import math

import pytest
import torch

from eacps.search.noise import NoiseRecipe, make_noise, seed_noise

SHAPES = [(1, 4, 8, 8), (1, 16, 16, 12), (1, 4, 64, 64), (1, 16, 1, 8, 8)]


def corr(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


def cos(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("shape", SHAPES)
def test_plain_seed_is_manual_seed_randn_without_touching_global_rng(shape):
    state = torch.random.get_rng_state()
    ours = make_noise(NoiseRecipe(seed=1234), shape)
    assert torch.equal(torch.random.get_rng_state(), state), "drawing noise changed the global RNG"
    torch.manual_seed(1234)
    assert torch.equal(ours, torch.randn(shape))
    torch.random.set_rng_state(state)


def test_large_seeds_work():
    assert make_noise(NoiseRecipe(seed=2**64 - 1), (1, 4, 4, 4)).shape == (1, 4, 4, 4)
    with pytest.raises(ValueError):
        NoiseRecipe(seed=2**64)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["slerp", "sphere"])
@pytest.mark.parametrize("strength", [0.05, 0.3, 0.6, 1.0])
def test_children_keep_the_parent_norm(shape, mode, strength):
    parent = NoiseRecipe(seed=7)
    child = make_noise(NoiseRecipe(seed=99, mode=mode, strength=strength, parent=parent), shape)
    p = make_noise(parent, shape)
    assert child.dtype == torch.float32 and child.shape == torch.Size(shape)
    assert abs(child.double().norm() / p.double().norm() - 1) < 1e-5


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("strength", [0.02, 0.2, 0.5, 0.8, 1.0])
def test_sphere_cosine_is_exactly_lam(shape, strength):
    parent = NoiseRecipe(seed=3, mode="slerp", strength=0.4, parent=NoiseRecipe(seed=5))  # a child as parent
    recipe = NoiseRecipe(seed=11, mode="sphere", strength=strength, parent=parent)
    lam = math.cos(strength * math.pi / 2)
    assert recipe.cosine == pytest.approx(lam)
    assert abs(cos(make_noise(recipe, shape), make_noise(parent, shape)) - lam) < 1e-6


def test_slerp_correlation_falls_monotonically_with_strength():
    shape = (1, 4, 32, 32)
    parent = NoiseRecipe(seed=21)
    p = make_noise(parent, shape)
    strengths = [0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0]
    for child_seed in (1, 2, 3):
        rs = [corr(make_noise(NoiseRecipe(child_seed, "slerp", s, parent), shape), p) for s in strengths]
        assert all(a > b for a, b in zip(rs[:-1], rs[1:], strict=True)), rs
        assert rs[1] > 0.98  # strength 0.1 stays very close (~cos(9 deg))
        assert abs(rs[-1]) < 0.05  # strength 1 is the new seed's direction: unrelated


def test_seed_offset_children_are_uncorrelated_with_the_elite():
    shape = (1, 4, 64, 64)  # 16384 values: |r| of independent noise has std ~0.008
    elite = NoiseRecipe(seed=1000)
    e = make_noise(elite, shape)
    rs = [corr(make_noise(NoiseRecipe(1000 + j, "seed_offset", parent=elite), shape), e) for j in range(1, 9)]
    assert max(abs(r) for r in rs) < 0.04, rs
    assert torch.equal(make_noise(NoiseRecipe(1003, "seed_offset", parent=elite), shape), seed_noise(1003, shape))


@pytest.mark.parametrize("mode", ["slerp", "sphere", "seed_offset"])
def test_children_are_a_pure_function_of_their_recipe(mode):
    shape = (1, 4, 8, 8)
    strength = 0.5 if mode != "seed_offset" else 0.0
    r = NoiseRecipe(seed=77, mode=mode, strength=strength, parent=NoiseRecipe(seed=1))
    a, b = make_noise(r, shape), make_noise(NoiseRecipe.from_dict(r.to_dict()), shape)
    assert torch.equal(a, b)
    other_seed = make_noise(NoiseRecipe(seed=78, mode=mode, strength=strength, parent=NoiseRecipe(seed=1)), shape)
    assert not torch.equal(a, other_seed)
    if mode != "seed_offset":
        other_parent = make_noise(NoiseRecipe(seed=77, mode=mode, strength=strength, parent=NoiseRecipe(seed=2)), shape)
        assert not torch.equal(a, other_parent)


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5, float("nan")])
def test_bad_strength_is_refused(strength):
    with pytest.raises(ValueError, match="strength"):
        NoiseRecipe(seed=1, mode="slerp", strength=strength, parent=NoiseRecipe(seed=0))


def test_unknown_mode_and_orphan_child_are_refused():
    with pytest.raises(ValueError, match="unknown noise mode"):
        NoiseRecipe(seed=1, mode="jitter", strength=0.5, parent=NoiseRecipe(seed=0))
    with pytest.raises(ValueError, match="needs a parent"):
        NoiseRecipe(seed=1, mode="slerp", strength=0.5)
