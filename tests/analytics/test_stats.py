"""Intervals against published values, and verdicts of comparisons."""

from __future__ import annotations

import pytest

from kept_analytics.compare import compare
from kept_analytics.metrics import GroupCounts, finalize
from kept_analytics.sequential import sequential_difference
from kept_analytics.stats import newcombe_difference, wilson, z_for


def test_wilson_matches_newcombe_1998() -> None:
    # Newcombe (1998), Two-sided confidence intervals for the single proportion: 81/263.
    interval = wilson(81, 263)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.2553, 0.3662)


def test_newcombe_hybrid_score_matches_the_paper() -> None:
    # Newcombe (1998), difference between independent proportions, example (a):
    # 56/70 - 48/80, method 10 (score, no continuity correction): 0.0524 to 0.3339.
    interval = newcombe_difference(48, 80, 56, 70)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0524, 0.3339)


def test_z_for_alpha() -> None:
    assert z_for(0.05) == pytest.approx(1.959963984540054)
    assert z_for(0.01) == pytest.approx(2.5758293035489)


def test_wilson_edges() -> None:
    assert wilson(0, 0).low == 0.0 and wilson(0, 0).high == 1.0
    assert wilson(0, 10).low == 0.0
    assert wilson(10, 10).high == pytest.approx(1.0)


def _group(generations: int, accepted: int, up: int = 0, down: int = 0) -> dict[str, object]:
    counts = GroupCounts(generations=generations, accepted=accepted, votes_up=up, votes_down=down)
    counts.survival_measured = {30: accepted}
    counts.survival_kept = {30: accepted // 2}
    return finalize(counts, (30,))


def test_verdicts() -> None:
    a = _group(1000, 400, up=50, down=50)
    better = {c.metric: c for c in compare(a, _group(1000, 480, up=52, down=48), (30,))}
    assert better["acceptance_rate"].verdict == "better"
    assert better["acceptance_rate"].difference == pytest.approx(0.08)
    assert better["acceptance_rate"].ci_low is not None and better["acceptance_rate"].ci_low > 0
    assert better["vote_score"].verdict == "no detectable difference"
    worse = {c.metric: c for c in compare(a, _group(1000, 330), (30,))}
    assert worse["acceptance_rate"].verdict == "worse"
    assert worse["vote_score"].verdict == "not enough data"
    assert worse["vote_score"].difference is None
    assert worse["kept_rate[30]"].a_n == 400


def test_correction_rate_is_compared_and_lower_is_better() -> None:
    a = finalize(GroupCounts(generations=1000, accepted=400, corrected=200), (30,))
    b = finalize(GroupCounts(generations=1000, accepted=400, corrected=120), (30,))
    by_metric = {c.metric: c for c in compare(a, b, (30,))}
    fewer = by_metric["correction_rate"]
    assert fewer.better == "lower"
    assert fewer.difference == pytest.approx(-0.08)
    assert fewer.ci_high is not None and fewer.ci_high < 0
    assert fewer.verdict == "better"  # fewer corrections
    assert by_metric["acceptance_rate"].better == "higher"
    more = {c.metric: c for c in compare(b, a, (30,))}["correction_rate"]
    assert more.verdict == "worse"


def test_sequential_comparisons_share_alpha_over_the_metrics() -> None:
    a, b = _group(1000, 400, up=50, down=50), _group(1000, 300)
    fixed = {c.metric: c for c in compare(a, b, (30,))}
    always = {c.metric: c for c in compare(a, b, (30,), sequential=True, alpha=0.05)}
    assert list(always) == ["acceptance_rate", "vote_score", "correction_rate", "kept_rate[30]"]
    # Each of the 4 metrics gets 0.05 / 4: its interval is the sequence at that level.
    share = sequential_difference(400, 1000, 300, 1000, 0.05 / 4)
    acceptance = always["acceptance_rate"]
    assert (acceptance.ci_low, acceptance.ci_high) == (share.low, share.high)
    assert acceptance.verdict == "worse"  # 10 points on 1,000 each: clear even so
    assert acceptance.ci_low is not None and fixed["acceptance_rate"].ci_low is not None
    assert acceptance.ci_low < fixed["acceptance_rate"].ci_low  # wider: it pays for peeking
    assert always["vote_score"].verdict == "not enough data"
    # A difference one look would call, and that repeated looks cannot yet.
    c, d = _group(1000, 400), _group(1000, 445)
    assert {x.metric: x for x in compare(c, d, (30,))}["acceptance_rate"].verdict == "better"
    judged = {x.metric: x for x in compare(c, d, (30,), sequential=True)}
    assert judged["acceptance_rate"].verdict == "no detectable difference"
