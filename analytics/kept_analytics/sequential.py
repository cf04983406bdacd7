"""Always-valid comparisons: a confidence sequence for the difference of two proportions.

A fixed-horizon interval (`stats.newcombe_difference`) is right for one look at a sample
size chosen in advance. A dashboard, `kept compare` run every morning and an alert rule
evaluated every minute look again and again, and the chance that *some* look shows a
difference where there is none grows with every look (over a third of the A/A pairs of
tests/analytics/test_sequential.py cross a 95% Newcombe interval at least once in a week
of hourly looks). A confidence sequence holds at every look at once:
P(for all t: p_b - p_a ∈ [low_t, high_t]) ≥ 1 - alpha, however often and whenever it is
looked at, and whether or not the looks stop when something is seen.

What is implemented: the two-sided normal-mixture boundary (Robbins 1970; Howard, Ramdas,
McAuliffe, Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
Annals of Statistics 49(2), eq. (14) and its mixing parameter ρ; the same formula as
`TwoSidedNormalMixture` in their confseq library)

    |S_t| ≤ sqrt((V_t + ρ) · (log(1 + V_t / ρ) + 2 log(1 / alpha)))

applied to the difference of the two observed rates D̂ = p̂_b - p̂_a in information time:
V_t = 1 / Var(D̂) and S_t = V_t · (D̂ - D), with Var(D̂) = p_a(1-p_a)/n_a + p_b(1-p_b)/n_b
estimated from the data. Solved for D this is the interval

    D̂ ± sqrt(Var · (Var + τ²) / τ² · log((Var + τ²) / (Var · alpha²))),    ρ = 1 / τ².

Seen as a test, it is the mixture SPRT of Johari, Koomen, Pekelis, Walsh (2017/2022,
"Always valid inference: continuous monitoring of A/B tests", Operations Research 70(3),
the normal-mixture mSPRT with mixing distribution N(0, τ²) on the difference): the
interval excludes 0 exactly when their likelihood ratio
sqrt(Var / (Var + τ²)) · exp(τ² D̂² / (2 Var (Var + τ²))) reaches 1 / alpha. Plugging in the
estimated variance makes the guarantee asymptotic (Waudby-Smith, Arbour, Sinha, Kennedy,
Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences", Annals
of Statistics 2024: their Gaussian-mixture asymptotic confidence sequence, which is this
boundary with a consistent variance estimate); rates are estimated as (s + 1) / (n + 2)
inside the variance so that a run of all-0 or all-1 outcomes never makes it 0. The
simulation test measures the error: 2 to 3% of A/A pairs ever cross at alpha = 0.05 over
a week of hourly looks.

The mixing parameter: τ is the standard deviation of the mixture over true differences,
in rate units. Every τ gives a valid sequence; it only chooses where the sequence is
tightest: around the sample size at which the standard error of D̂ is
τ / sqrt(2 log(1/alpha) + log(1 + 2 log(1/alpha))) (τ / 2.8 at alpha = 0.05; Howard et
al.'s optimal ρ for a target intrinsic time, `best_rho`). The default, 0.05, is tuned to
the effects kept is for: a change of a few points of acceptance, detected within a few
thousand generations, while much larger effects still show up early and smaller ones
later.

Several metrics: the comparisons of one pair of groups share one error budget. Each of
the k metrics gets alpha / k (Bonferroni, `family_alpha`): by the union bound, the chance
that *any* of the k confidence sequences ever misses its true difference is at most
k · alpha / k = alpha, with no assumption about how the metrics depend on each other
(the kept rates at the five checkpoints are strongly correlated, so this is
conservative). It holds for sequences just as for single intervals, because each
sequence's guarantee is itself a single event over all time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_ALPHA = 0.05
MIXING_SD = 0.05
"""τ: the standard deviation of the normal mixture over true differences (module doc)."""


@dataclass(frozen=True)
class SequentialInterval:
    """An always-valid interval of p_b - p_a at the current counts; all None while an arm
    is empty. Valid at level 1 - alpha simultaneously over every look."""

    estimate: float | None
    low: float | None
    high: float | None
    alpha: float


def normal_mixture_bound(v: float, rho: float, alpha: float) -> float:
    """Howard et al. (2021) eq. (14): the two-sided normal-mixture uniform boundary for a
    process with intrinsic time (variance process) `v` and mixing precision `rho`."""
    return math.sqrt((v + rho) * (math.log1p(v / rho) + 2 * math.log(1 / alpha)))


def best_rho(v_opt: float, alpha: float) -> float:
    """The mixing precision that makes the boundary tightest at intrinsic time `v_opt`."""
    log_alpha = 2 * math.log(1 / alpha)
    return v_opt / (log_alpha + math.log1p(log_alpha))


def family_alpha(alpha: float, metrics: int) -> float:
    """Each metric's share of a family-wise alpha over `metrics` comparisons (Bonferroni)."""
    return alpha / max(1, metrics)


def _variance(successes: int, n: int) -> float:
    # The Laplace estimate keeps the variance above 0 at 0/n and n/n.
    p = (successes + 1) / (n + 2)
    return p * (1 - p) / n


def radius(variance: float, alpha: float, mixing_sd: float = MIXING_SD) -> float:
    """Half-width of the sequence when the difference's variance is `variance`."""
    information = 1 / variance
    return normal_mixture_bound(information, 1 / mixing_sd**2, alpha) / information


def sequential_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, alpha: float
) -> SequentialInterval:
    """The always-valid (1 - alpha) interval of p_b - p_a from cumulative counts."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if n_a <= 0 or n_b <= 0:
        return SequentialInterval(None, None, None, alpha)
    estimate = successes_b / n_b - successes_a / n_a
    half = radius(_variance(successes_a, n_a) + _variance(successes_b, n_b), alpha)
    # The difference of two rates lies in [-1, 1]: nothing outside is ever possible.
    low, high = max(-1.0, estimate - half), min(1.0, estimate + half)
    return SequentialInterval(estimate, low, high, alpha)
