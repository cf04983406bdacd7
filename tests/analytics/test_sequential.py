"""Always-valid confidence sequences: the boundary against reference values, its shape,
and a simulation of a week of hourly looks at A/A and A/B pairs (pytest -s prints it)."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from dataclasses import dataclass

import pytest

from kept_analytics.compare import better, verdict
from kept_analytics.sequential import (
    MIXING_SD,
    best_rho,
    family_alpha,
    normal_mixture_bound,
    radius,
    sequential_difference,
)
from kept_analytics.stats import newcombe_difference

ALPHA = 0.05


def test_boundary_matches_the_reference_implementation() -> None:
    # confseq (Howard et al.'s library), test/uniform_boundaries_unittest.cpp: the two-sided
    # normal mixture optimised for v = 100 at alpha 0.05, evaluated at v = 100.
    rho = best_rho(100, 0.05)
    assert rho == pytest.approx(12.60056, abs=1e-5)
    assert normal_mixture_bound(100, rho, 0.05) == pytest.approx(30.35209, abs=1e-5)


def test_radius_in_closed_form() -> None:
    # With Var(D̂) = τ² the boundary is sqrt(2 Var (log 2 + 2 log(1/alpha))).
    tau2 = MIXING_SD**2
    expected = math.sqrt(2 * tau2 * (math.log(2) + 2 * math.log(1 / ALPHA)))
    assert radius(tau2, ALPHA) == pytest.approx(expected, rel=1e-12)


def _laplace_variance(successes: int, n: int) -> float:
    p = (successes + 1) / (n + 2)
    return p * (1 - p) / n


@pytest.mark.parametrize(
    ("sa", "na", "sb", "nb"),
    [(400, 1000, 350, 1000), (40, 100, 52, 100), (4000, 10000, 4120, 10000), (3, 50, 0, 40)],
)
def test_it_is_the_inverted_msprt(sa: int, na: int, sb: int, nb: int) -> None:
    # Johari et al.: reject when sqrt(V / (V + τ²)) · exp(τ² D² / (2 V (V + τ²))) ≥ 1/alpha;
    # the interval excludes 0 exactly then, and 0 sits on its edge at equality.
    tau2 = MIXING_SD**2
    v = _laplace_variance(sa, na) + _laplace_variance(sb, nb)
    d = sb / nb - sa / na
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2 * v * (v + tau2))
    interval = sequential_difference(sa, na, sb, nb, ALPHA)
    assert interval.low is not None and interval.high is not None
    rejects = interval.low > 0 or interval.high < 0
    assert rejects == (log_lr >= math.log(1 / ALPHA))
    # At the edge: the likelihood ratio of the difference at the interval's end is 1/alpha.
    edge = interval.high if d < 0 else interval.low
    log_lr_edge = 0.5 * math.log(v / (v + tau2)) + tau2 * (d - edge) ** 2 / (2 * v * (v + tau2))
    assert log_lr_edge == pytest.approx(math.log(1 / ALPHA), rel=1e-9)


def test_symmetric_and_centred() -> None:
    forward = sequential_difference(400, 1000, 350, 1000, ALPHA)
    backward = sequential_difference(350, 1000, 400, 1000, ALPHA)
    assert forward.estimate == pytest.approx(-0.05)
    assert backward.estimate == pytest.approx(0.05)
    assert forward.low is not None and forward.high is not None
    assert backward.low is not None and backward.high is not None
    assert (forward.low, forward.high) == pytest.approx((-backward.high, -backward.low))
    middle = forward.estimate
    assert middle is not None
    assert forward.high - middle == pytest.approx(middle - forward.low)


def test_shrinks_like_sqrt_log_n_over_n() -> None:
    sizes = [10**k for k in range(3, 10)]
    radii = [sequential_difference(n // 2, n, n // 2, n, ALPHA).high or 0.0 for n in sizes]
    assert all(later < earlier for earlier, later in itertools.pairwise(radii))
    # radius · sqrt(n / log n) tends to sqrt(2 · 0.25) (the variance of the difference
    # times n): bounded, and settling.
    scaled = [r * math.sqrt(n / math.log(n)) for r, n in zip(radii, sizes, strict=True)]
    assert all(0.5 < s / math.sqrt(0.5) < 2 for s in scaled), scaled
    steps = [abs(b - a) for a, b in itertools.pairwise(scaled)]
    assert steps[-1] < steps[0] / 2, scaled
    # Not like 1/sqrt(n): a hundred times the data narrows it by less than ten times.
    assert radii[2] / radii[4] < 10


def test_wider_than_one_look_and_narrower_at_larger_alpha() -> None:
    for sa, na, sb, nb in [(40, 100, 52, 100), (4000, 10000, 4120, 10000)]:
        always = sequential_difference(sa, na, sb, nb, ALPHA)
        once = newcombe_difference(sa, na, sb, nb)
        assert always.low is not None and always.high is not None
        assert always.low < once.low and always.high > once.high
        loose = sequential_difference(sa, na, sb, nb, 0.2)
        assert loose.low is not None and loose.high is not None
        assert always.low < loose.low and loose.high < always.high


def test_edges() -> None:
    empty = sequential_difference(0, 0, 5, 10, ALPHA)
    assert (empty.estimate, empty.low, empty.high, empty.alpha) == (None, None, None, ALPHA)
    # All-0 against all-1: the variance never collapses to 0, the interval stays in [-1, 1].
    tiny = sequential_difference(0, 2, 2, 2, ALPHA)
    assert (tiny.low, tiny.high) == (-1.0, 1.0)
    clear = sequential_difference(0, 200, 200, 200, ALPHA)
    assert clear.low is not None and clear.low > 0.8
    with pytest.raises(ValueError, match="alpha"):
        sequential_difference(1, 2, 1, 2, 0.0)
    assert family_alpha(0.05, 8) == pytest.approx(0.00625)


# ---- simulation: a week of hourly looks ---------------------------------------------------

PAIRS = 200
HOURS = 7 * 24
MEAN_PER_HOUR = 60
"""Generations per arm and hour on average (~10,000 per arm in the week), with a daily
cycle between 40% and 160% of it and hour-to-hour noise."""
BASE_RATE = 0.40


def _volume(rng: random.Random, hour: int) -> int:
    daily = 1 + 0.6 * math.sin(2 * math.pi * (hour - 9) / 24)
    return round(MEAN_PER_HOUR * daily * rng.uniform(0.7, 1.3))


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


@dataclass
class Pair:
    sequential_alerted: bool = False
    fixed_alerted: bool = False
    generations_needed: int | None = None
    """Both arms' generations when the always-valid sequence first said `worse`."""


def _run(rng: random.Random, p_a: float, p_b: float) -> Pair:
    """One pair over the week, both tests evaluated at every hourly look."""
    direction = better("acceptance_rate")
    pair = Pair()
    sa = na = sb = nb = 0
    for hour in range(HOURS):
        n = _volume(rng, hour)
        sa, na = sa + _binomial(rng, n, p_a), na + n
        n = _volume(rng, hour)
        sb, nb = sb + _binomial(rng, n, p_b), nb + n
        always = sequential_difference(sa, na, sb, nb, ALPHA)
        seen = verdict(always.low, always.high, direction)
        if seen in ("better", "worse") and not pair.sequential_alerted:
            pair.sequential_alerted = True
            if seen == "worse":
                pair.generations_needed = na + nb
        once = newcombe_difference(sa, na, sb, nb)
        pair.fixed_alerted |= once.low > 0 or once.high < 0
    return pair


def test_a_week_of_looks_a_a_stays_under_alpha_and_a_drop_is_found() -> None:
    rng = random.Random(20261130)
    null = [_run(rng, BASE_RATE, BASE_RATE) for _ in range(PAIRS)]
    sequential_rate = sum(p.sequential_alerted for p in null) / PAIRS
    fixed_rate = sum(p.fixed_alerted for p in null) / PAIRS
    drop = [_run(rng, BASE_RATE, BASE_RATE - 0.05) for _ in range(PAIRS)]
    found = [p.generations_needed for p in drop if p.generations_needed is not None]
    wrong_way = sum(p.sequential_alerted and p.generations_needed is None for p in drop)
    median = statistics.median(found) if found else None
    print(
        f"\nA/A: {PAIRS} pairs at {BASE_RATE:.0%} acceptance, {HOURS} hourly looks over a week "
        f"(~{MEAN_PER_HOUR * HOURS:,} generations per arm):"
        f"\n  always-valid 95% confidence sequence ever alerted: {sequential_rate:.1%} "
        f"(alpha {ALPHA:.0%})"
        f"\n  fixed-horizon 95% Newcombe interval, looked at every hour, ever alerted: "
        f"{fixed_rate:.1%}"
        f"\nA/B: {PAIRS} pairs, acceptance {BASE_RATE:.0%} -> {BASE_RATE - 0.05:.0%}:"
        f"\n  detected as worse within the week: {len(found)}/{PAIRS}; median generations "
        f"needed (both arms): {median:,.0f}"
    )
    assert sequential_rate <= ALPHA
    assert fixed_rate >= 0.25 and fixed_rate >= 5 * max(sequential_rate, 0.01)
    assert len(found) >= 0.95 * PAIRS and wrong_way == 0
    assert median is not None and median < 0.5 * 2 * MEAN_PER_HOUR * HOURS
