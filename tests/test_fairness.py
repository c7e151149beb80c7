"""Fairness measures of routing: shares of leads and value, load Gini, minimum share."""

from __future__ import annotations

import numpy as np

from funnelcast.core.fairness import fairness, fairness_of_open_loads, gini


def test_gini_is_zero_for_an_even_team_and_near_one_when_one_rep_takes_all() -> None:
    assert gini(np.array([5, 5, 5, 5])) == 0.0
    # one of 4 reps holds everything: (2 x 4 x 10) / (4 x 10) - 5/4 = 0.75, the maximum for 4 reps
    assert gini(np.array([0, 0, 0, 10])) == 0.75
    assert gini(np.array([])) == 0.0 and gini(np.zeros(3)) == 0.0


def test_shares_count_idle_reps_and_leave_unassigned_leads_out() -> None:
    f = fairness(["a", "b", "c", "d"], ["a", "a", "b", None, "a"], np.array([0.1, 0.1, 0.6, 0.9, 0.2]))
    # 4 assigned leads: a 3, b 1, c and d none; value 0.4 on a, 0.6 on b (the unassigned 0.9 left out)
    assert np.allclose(f.lead_share, [0.75, 0.25, 0.0, 0.0])
    assert np.allclose(f.value_share, [0.4, 0.6, 0.0, 0.0])
    assert f.min_share == 0.0 and f.min_share_of_even == 0.0
    # counts 0, 0, 1, 3: 2 x (3 x 1 + 4 x 3) / (4 x 4) - 5/4 = 0.625
    assert abs(f.load_gini - 0.625) < 1e-12
    assert f.as_dict()["reps"]["b"] == {"lead_share": 0.25, "value_share": 0.6}  # type: ignore[index]


def test_an_even_round_robin_has_min_share_equal_to_the_even_share() -> None:
    f = fairness(["a", "b"], ["a", "b"] * 50)
    assert f.min_share == 0.5 and f.min_share_of_even == 1.0 and f.load_gini == 0.0


def test_live_fairness_reads_the_open_loads_of_the_whole_team() -> None:
    f = fairness_of_open_loads(["a", "b", "c", "d"], {"d": 10, "x": 3})
    assert f.load_gini == 0.75 and list(f.lead_share) == [0.0, 0.0, 0.0, 1.0]
