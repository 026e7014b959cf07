"""Energy math on hand-made traces (DESIGN §5: integrate sampled power, counter deltas)."""

from __future__ import annotations

import pytest

from dualbench.analysis import series as energy

S = 1_000_000_000  # ns per second


def test_constant_power_gives_power_times_time():
    trace = [(0, 50.0), (1 * S, 50.0), (2 * S, 50.0), (3 * S, 50.0)]
    assert energy.integrate(trace, 0, 3 * S) == pytest.approx(150.0)
    # a window cut between samples counts only its share
    assert energy.integrate(trace, S // 2, 2 * S + S // 4) == pytest.approx(50.0 * 1.75)


def test_ramp_is_integrated_exactly_by_the_trapezoid():
    trace = [(0, 0.0), (2 * S, 100.0)]  # 50 W/s ramp
    assert energy.integrate(trace, 0, 2 * S) == pytest.approx(100.0)
    # from 0.5 s (25 W) to 1.5 s (75 W): mean 50 W for 1 s
    assert energy.integrate(trace, S // 2, 3 * S // 2) == pytest.approx(50.0)
    assert energy.mean(trace, S // 2, 3 * S // 2) == pytest.approx(50.0)


def test_uneven_samples():
    trace = [(0, 10.0), (S // 10, 30.0), (S, 30.0), (3 * S, 10.0)]
    expected = 0.1 * 20 + 0.9 * 30 + 2 * 20
    assert energy.integrate(trace, 0, 3 * S) == pytest.approx(expected)


def test_no_extrapolation_outside_the_samples():
    trace = [(S, 10.0), (2 * S, 10.0)]
    assert energy.integrate(trace, 0, 2 * S) is None
    assert energy.integrate(trace, S, 3 * S) is None
    assert energy.value_at(trace, 0) is None
    assert energy.integrate([], 0, S) is None


def test_counter_delta_with_a_wrap_around():
    wrap = 262_143_328_850.0  # a real RAPL max_energy_range_uj
    counter = [(0, wrap - 3e6), (S, wrap - 1e6), (2 * S, 1e6), (3 * S, 3e6)]
    # 2 J per second throughout, across the wrap
    assert energy.counter_delta(counter, 0, 3 * S, wrap) == pytest.approx(6e6)
    assert energy.counter_delta(counter, S // 2, 5 * S // 2, wrap) == pytest.approx(4e6)


def test_counter_that_goes_down_without_a_range_is_an_error():
    with pytest.raises(ValueError, match="counter went down"):
        energy.counter_delta([(0, 5.0), (S, 1.0)], 0, S)


def test_net_energy_subtracts_idle_draw():
    assert energy.net_energy(300.0, 40.0, 5.0) == pytest.approx(100.0)
    assert energy.net_energy(None, 40.0, 5.0) is None
    assert energy.net_energy(300.0, None, 5.0) is None
