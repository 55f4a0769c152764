"""The seeded Generator: determinism, ranges, distributions and the module default."""

import numpy as np
import pytest

import rl.random as rlr
from rl import backend


def _np(a):
    return backend.to_numpy(a)


def test_same_seed_is_bit_identical_on_cpu():
    a, b = rlr.Generator(7), rlr.Generator(7)
    for draw in (
        lambda g: g.normal((3, 4)),
        lambda g: g.uniform(-1, 2, 5),
        lambda g: g.integers(10, shape=6),
        lambda g: g.permutation(9),
        lambda g: g.choice(4, 8, p=[0.1, 0.2, 0.3, 0.4]),
    ):
        np.testing.assert_array_equal(_np(draw(a)), _np(draw(b)))
    assert not np.array_equal(_np(rlr.Generator(8).normal(5)), _np(rlr.Generator(7).normal(5)))


def test_ranges_shapes_and_dtypes(device):
    g = rlr.Generator(0)
    u = _np(g.uniform(-2.0, 3.0, (1000,)))
    assert u.dtype == np.float32 and u.min() >= -2 and u.max() < 3
    ints = _np(g.integers(3, 7, (500,)))
    assert set(np.unique(ints)) == {3, 4, 5, 6}
    assert g.normal((2, 3), np.float64).dtype == np.float64
    assert sorted(_np(g.permutation(6))) == list(range(6))
    picked = _np(g.choice(10, 5, replace=False))
    assert len(set(picked)) == 5 and set(picked.tolist()) <= set(range(10))
    b = _np(g.bernoulli(0.3, (10000,)))
    assert b.dtype == bool and abs(b.mean() - 0.3) < 0.02
    n = _np(g.normal(20000, mean=1.0, std=2.0))
    assert abs(n.mean() - 1.0) < 0.05 and abs(n.std() - 2.0) < 0.05


def test_choice_with_probabilities(device):
    counts = np.bincount(_np(rlr.Generator(1).choice(3, 30000, p=[0.5, 0.0, 0.5])), minlength=3) / 30000
    np.testing.assert_allclose(counts, [0.5, 0.0, 0.5], atol=0.015)  # 5 standard errors
    assert counts[1] == 0.0  # a zero-probability choice is never drawn, not just rarely


def test_spawn_gives_independent_deterministic_children():
    kids = rlr.Generator(3).spawn(2)
    again = rlr.Generator(3).spawn(2)
    np.testing.assert_array_equal(_np(kids[0].normal(4)), _np(again[0].normal(4)))
    assert not np.array_equal(_np(kids[0].normal(4)), _np(kids[1].normal(4)))


def test_module_default_generator_is_reseedable():
    rlr.seed(5)
    first = _np(rlr.default_generator().normal(3))
    rlr.seed(5)
    np.testing.assert_array_equal(first, _np(rlr.default_generator().normal(3)))
    rlr.seed(0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="seed"):
        rlr.Generator(-1)
    with pytest.raises(ValueError, match="low < high"):
        rlr.Generator(0).integers(5, 5)
    with pytest.raises(ValueError, match="without replacement"):
        rlr.Generator(0).choice(3, 4, replace=False)


def test_state_round_trip_continues_the_host_stream():
    previous = backend.current().device
    backend.use_device("cpu")  # only the host stream can be saved (see Generator.get_state)
    try:
        g = rlr.Generator(11)
        assert g.get_state() == {"numpy": None}  # nothing drawn yet: nothing to save
        g.normal(5)
        state = g.get_state()
        expected = _np(g.normal(5))
        other = rlr.Generator(99)
        other.set_state(state)
        np.testing.assert_array_equal(_np(other.normal(5)), expected)
        fresh = rlr.Generator(11)
        fresh.set_state({"numpy": None})
        np.testing.assert_array_equal(_np(fresh.normal(5)), _np(rlr.Generator(11).normal(5)))
    finally:
        backend.use_device(previous)
