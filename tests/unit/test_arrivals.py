"""Open-loop arrivals: seeded and reproducible, at the asked rate, and the queueing of a
hand-made schedule."""

from __future__ import annotations

import numpy as np
import pytest

from dualbench.measure.arrivals import arrival_offsets, backlog, serve_in_order


@pytest.mark.parametrize(("process", "burstiness"), [("poisson", 1.0), ("gamma", 0.5),
                                                     ("gamma", 4.0)])  # fmt: skip
def test_the_rate_is_within_2_percent_over_1000_arrivals(process, burstiness):
    for seed in range(20):  # every seed, not a lucky one
        times = arrival_offsets(process, 5.0, 1000, seed=seed, slot="A", burstiness=burstiness)
        assert len(times) == 1000 and np.all(np.diff(times) > 0)
        assert 1000 / times[-1] == pytest.approx(5.0, rel=0.02)


def test_a_prefix_does_not_depend_on_the_count():
    long = arrival_offsets("poisson", 2.0, 2500, seed=3, slot="A")
    assert np.array_equal(arrival_offsets("poisson", 2.0, 40, seed=3, slot="A"), long[:40])
    assert np.array_equal(arrival_offsets("poisson", 2.0, 1700, seed=3, slot="A"), long[:1700])


def test_burstiness_changes_the_spread_not_the_rate():
    cv = {}
    for b in (0.25, 1.0, 4.0):
        gaps = np.diff(arrival_offsets("gamma", 2.0, 4000, seed=1, slot="A", burstiness=b))
        cv[b] = gaps.std() / gaps.mean()  # a gamma's coefficient of variation is 1/sqrt(shape)
        assert cv[b] == pytest.approx(1 / np.sqrt(b), rel=0.1)
    assert cv[0.25] > cv[1.0] > cv[4.0]


def test_seeded_reproducible_and_different_per_slot_and_seed():
    a = arrival_offsets("poisson", 3.0, 50, seed=0, slot="A")
    assert np.array_equal(a, arrival_offsets("poisson", 3.0, 50, seed=0, slot="A"))
    assert not np.array_equal(a, arrival_offsets("poisson", 3.0, 50, seed=0, slot="B"))
    assert not np.array_equal(a, arrival_offsets("poisson", 3.0, 50, seed=1, slot="A"))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        arrival_offsets("uniform", 1.0, 10, 0, "A")
    with pytest.raises(ValueError, match="rate_rps"):
        arrival_offsets("poisson", 0.0, 10, 0, "A")
    with pytest.raises(ValueError, match="burstiness"):
        arrival_offsets("gamma", 1.0, 10, 0, "A", burstiness=0.0)


def test_queueing_on_a_hand_made_schedule():
    # arrivals at 0, 1, 1.5, 5; each call takes 2 s, the third 0.5 s
    served = serve_in_order([0.0, 1.0, 1.5, 5.0], [2.0, 2.0, 0.5, 2.0])
    assert served.starts == (0.0, 2.0, 4.0, 5.0)
    assert served.queue_s == (0.0, 1.0, 2.5, 0.0)
    # window ends at 4.5: arrivals 0, 1, 1.5 are due and all started; at 3.9 the third waits
    assert backlog([0.0, 1.0, 1.5, 5.0], served.starts, 4.5) == 0
    assert backlog([0.0, 1.0, 1.5, 5.0], served.starts, 3.9) == 1
