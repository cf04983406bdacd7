"""Confidence intervals for proportions and their differences (pure Python).

Wilson's score interval for one proportion and Newcombe's hybrid score interval
(method 10 of Newcombe 1998) for the difference of two independent proportions: both
behave well for small samples and rates near 0 or 1, where the normal approximation
does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def z_for(alpha: float) -> float:
    """The two-sided normal quantile of a (1 - alpha) interval (1.96 for alpha = 0.05)."""
    return -NormalDist().inv_cdf(alpha / 2)


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval of successes/n; (0, 1) when n is 0."""
    if n <= 0:
        return Interval(0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(max(0.0, center - half), min(1.0, center + half))


def newcombe_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = Z95
) -> Interval:
    """Interval of p_b - p_a (B relative to A)."""
    p_a, p_b = successes_a / n_a, successes_b / n_b
    a, b = wilson(successes_a, n_a, z), wilson(successes_b, n_b, z)
    difference = p_b - p_a
    low = difference - math.sqrt((p_b - b.low) ** 2 + (a.high - p_a) ** 2)
    high = difference + math.sqrt((b.high - p_b) ** 2 + (p_a - a.low) ** 2)
    return Interval(low, high)
