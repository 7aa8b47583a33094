"""The run stage's sampler: golden values (a change is a new SAMPLER_VERSION), and the distributions."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.learning.sampler import SAMPLER_VERSION, Draws, beta_draws, uniform_of

# Golden values of version 1: replay == live across machines, processes and upgrades rests on these.
# (Exact floats: only IEEE double arithmetic and libm's log, sqrt, cos are involved.)


def test_the_version_is_pinned() -> None:
    assert SAMPLER_VERSION == 1


def test_golden_uniforms() -> None:
    assert uniform_of("act_1", 0) == pytest.approx(0.808298349519021, abs=1e-15)
    assert uniform_of("act_1", 1) == pytest.approx(0.9684284063611435, abs=1e-15)
    assert uniform_of("", 0) == pytest.approx(0.5648180083996512, abs=1e-15)


def test_golden_normal_gamma_beta() -> None:
    d = Draws("seed")
    assert d.normal() == pytest.approx(0.9487937642650571, rel=1e-12)
    assert d.gamma(2.5) == pytest.approx(0.6496892828536175, rel=1e-12)
    assert d.gamma(0.3) == pytest.approx(0.2544161578373714, rel=1e-12)
    assert Draws("act_1").beta(3.0, 7.0) == pytest.approx(0.3071465708808058, rel=1e-12)
    assert Draws("act_1").beta(0.5, 0.5) == pytest.approx(0.9969170352187472, rel=1e-12)
    draws = beta_draws("act_1", [("email", 2.0, 5.0), ("sms", 1.0, 1.0)])
    assert draws == pytest.approx({"email": 0.3559190239549035, "sms": 0.22396282751810664}, rel=1e-12)


def test_an_arm_s_draw_does_not_depend_on_the_other_arms() -> None:
    alone = beta_draws("s", [("email", 2.0, 3.0)])
    assert beta_draws("s", [("sms", 1.0, 9.0), ("email", 2.0, 3.0)])["email"] == alone["email"]


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10_000))
def test_uniforms_are_inside_the_open_interval(seed: str, n: int) -> None:
    assert 0.0 < uniform_of(seed, n) < 1.0


@given(
    st.text(max_size=20),
    st.floats(min_value=0.05, max_value=500.0),
    st.floats(min_value=0.05, max_value=500.0),
)
def test_beta_draws_are_probabilities(seed: str, a: float, b: float) -> None:
    assert 0.0 <= Draws(seed).beta(a, b) <= 1.0


@pytest.mark.parametrize(("a", "b"), [(2.0, 5.0), (0.5, 0.5), (30.0, 70.0)])
def test_beta_mean_and_variance(a: float, b: float) -> None:
    xs = [Draws(f"m{i}").beta(a, b) for i in range(8000)]
    mean = a / (a + b)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    assert statistics.fmean(xs) == pytest.approx(mean, abs=4 * (var / 8000) ** 0.5)
    assert statistics.pvariance(xs) == pytest.approx(var, rel=0.1)


@pytest.mark.parametrize("shape", [0.3, 1.0, 4.0])
def test_gamma_mean(shape: float) -> None:
    xs = [Draws(f"g{i}").gamma(shape) for i in range(8000)]
    assert statistics.fmean(xs) == pytest.approx(shape, abs=4 * (shape / 8000) ** 0.5)


def test_a_bad_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="shape must be > 0"):
        Draws("x").gamma(0.0)
