"""Demand-shock scenarios (grid/plan/shocks.py) and their figure (sim/report/figures/shocks.py).

Expected values are computed here by hand or from the stated distribution (binomial bands of
4 sigma), not by calling the generator's own helpers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import grid.plan.shocks as shocks
from grid.errors import GridError
from grid.plan.shocks import (
    SHOCK_KINDS,
    ShockScenarios,
    ShockSettings,
    ShockSite,
    draw_shocks,
)
from sim.random_streams import stream
from sim.report.figures.shocks import plot_shocks

DROP, SURGE, OSCILLATION = (SHOCK_KINDS.index(kind) for kind in ("drop", "surge", "oscillation"))


def only(kind: str) -> tuple[tuple[str, float], ...]:
    return ((kind, 1.0),)


def fixed(**changes) -> ShockSettings:
    """Degenerate ranges (every event parameter fixed except onset), an event in every scenario."""
    base = dict(
        event_probability=1.0, depth=(0.5, 0.5), ramp_min=(2.0, 2.0), duration_min=(10.0, 10.0),
        recovery_min=(4.0, 4.0), period_min=(4.0, 4.0), owner_correlation=0.0,
    )
    base.update(changes)
    return ShockSettings(**base)


def within_binomial(hits: int, trials: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(hits / trials - p) <= sigmas * math.sqrt(p * (1.0 - p) / trials)


def reference_profile(minutes: np.ndarray, onset: float, kind: str, amplitude_mw: float,
                      ramp: float, duration: float, recovery: float, period: float) -> np.ndarray:
    """The event shape of docs/models/plan.md#fcm-5, one scalar at a time."""
    out = []
    for m in minutes:
        t = m - onset
        if t < 0:
            envelope = 0.0
        elif t < ramp:
            envelope = t / ramp
        elif t < ramp + duration:
            envelope = 1.0
        elif t < ramp + duration + recovery:
            envelope = 1.0 - (t - ramp - duration) / recovery
        else:
            envelope = 0.0
        if kind == "drop":
            sign = -1.0
        elif kind == "surge":
            sign = 1.0
        else:
            s = math.sin(2.0 * math.pi * t / period)
            sign = 1.0 if s >= 0 or abs(s) < 1e-12 else -1.0
        out.append(envelope * amplitude_mw * sign)
    return np.array(out)


# --- shape and sign -----------------------------------------------------------------------------


def test_drops_never_positive_surges_never_negative_oscillations_swing_both_ways() -> None:
    sites = [ShockSite(3, 1.5, "a"), ShockSite(7, 0.6, "b")]
    drawn = draw_shocks(sites, ShockSettings(event_probability=1.0), 600, np.random.default_rng(11))
    peak_up = drawn.deviation_mw.max(axis=2)
    peak_down = drawn.deviation_mw.min(axis=2)
    assert (drawn.kind >= 0).all()
    assert (peak_up[drawn.kind == DROP] <= 0).all() and (peak_down[drawn.kind == DROP] < 0).all()
    assert (peak_down[drawn.kind == SURGE] >= 0).all() and (peak_up[drawn.kind == SURGE] > 0).all()
    # Half a period is at most 3 min and the hold at least 5 min, sampled every minute: both halves show.
    assert (drawn.kind == OSCILLATION).sum() > 50
    assert (peak_up[drawn.kind == OSCILLATION] > 0).all() and (peak_down[drawn.kind == OSCILLATION] < 0).all()


@pytest.mark.parametrize("kind", SHOCK_KINDS)
def test_peak_deviation_is_depth_times_load(kind: str) -> None:
    # Ramp and duration (12 min) fit in the window, and the 10-min hold contains whole-minute steps.
    drawn = draw_shocks([ShockSite(5, 2.0, "a")], fixed(kind_weights=only(kind)), 200, np.random.default_rng(2))
    up = drawn.deviation_mw.max(axis=2)[:, 0]
    down = -drawn.deviation_mw.min(axis=2)[:, 0]
    expected_up = {"drop": 0.0, "surge": 1.0, "oscillation": 1.0}[kind]  # 0.5 x 2 MW
    expected_down = {"drop": 1.0, "surge": 0.0, "oscillation": 1.0}[kind]
    assert up == pytest.approx(np.full(200, expected_up), abs=1e-12)
    assert down == pytest.approx(np.full(200, expected_down), abs=1e-12)
    assert drawn.depth_fraction == pytest.approx(np.full((200, 1), 0.5))


# --- hand-computed profiles ---------------------------------------------------------------------


def test_profile_when_the_event_fills_the_window_is_deterministic() -> None:
    # window 12 = ramp 2 + duration 10: no room for a later onset, so the event starts at minute 0
    # and the window's end cuts the recovery.
    drawn = draw_shocks([ShockSite(1, 3.0, "a")], fixed(window_min=12.0, kind_weights=only("drop")), 3,
                        np.random.default_rng(0))
    hand = [0.0, -0.75] + [-1.5] * 10  # 0.5 x 3 MW reached after 2 min, linearly
    for s in range(3):
        assert drawn.deviation_mw[s, 0].tolist() == pytest.approx(hand)
    assert drawn.onset_min.tolist() == [[0.0]] * 3
    assert drawn.disturbed_h == pytest.approx(np.full((3, 1), 12.0 / 60.0))


def test_oscillation_square_wave_counts_zero_crossings_as_positive() -> None:
    # No ramp and a 12-min hold fill the 12-min window, so onset is 0; period 4 min sampled every
    # minute puts steps on sin = 0 (t = 0, 2, 4, ...), which
    # docs/models/plan.md#fcm-5 counts as +1.
    settings = fixed(window_min=12.0, ramp_min=(0.0, 0.0), duration_min=(12.0, 12.0), period_min=(4.0, 4.0),
                     kind_weights=only("oscillation"))
    drawn = draw_shocks([ShockSite(1, 2.0, "a")], settings, 2, np.random.default_rng(0))
    assert drawn.deviation_mw[:, 0].tolist() == [[1.0, 1.0, 1.0, -1.0] * 3] * 2


def test_drop_profile_at_minutes_relative_to_onset() -> None:
    # depth 0.5 of 3 MW = 1.5 MW; ramp 2, duration 10, recovery 4: 16 min disturbed.
    drawn = draw_shocks([ShockSite(1, 3.0, "a")], fixed(kind_weights=only("drop")), 300, np.random.default_rng(5))
    checked = 0
    for s in range(drawn.count):
        onset = float(drawn.onset_min[s, 0])
        assert 0.0 <= onset < 60.0 - 12.0
        profile = drawn.deviation_mw[s, 0]
        k0 = math.ceil(onset)  # first whole minute at or after the onset
        f = k0 - onset  # minutes since onset at step k0, in [0, 1)
        if k0 >= 1:
            assert profile[:k0] == pytest.approx(np.zeros(k0))
        # Back on schedule 16 min after onset, unless the window (60 min) ends first.
        if onset + 16.0 <= 60.0:
            assert drawn.disturbed_h[s, 0] == pytest.approx(16.0 / 60.0)
        else:
            assert drawn.disturbed_h[s, 0] == pytest.approx((60.0 - onset) / 60.0)
        if k0 + 16 >= 60:
            continue
        checked += 1
        assert profile[k0] == pytest.approx(-1.5 * f / 2.0)
        assert profile[k0 + 1] == pytest.approx(-1.5 * (1.0 + f) / 2.0)
        assert profile[k0 + 2: k0 + 12] == pytest.approx(np.full(10, -1.5))  # 2 <= t < 12
        assert profile[k0 + 12] == pytest.approx(-1.5 * (1.0 - f / 4.0))
        assert profile[k0 + 15] == pytest.approx(-1.5 * (1.0 - (3.0 + f) / 4.0))
        assert profile[k0 + 16:] == pytest.approx(np.zeros(60 - k0 - 16))
    assert checked > 200
    # Onset uniform on [0, 60 - 2 - 10): mean 24 min, standard deviation 48 / sqrt(12) min.
    assert abs(np.mean(drawn.onset_min) - 24.0) <= 4.0 * 48.0 / math.sqrt(12.0 * drawn.count)
    assert np.max(drawn.onset_min) > 45.0


@pytest.mark.parametrize("kind", SHOCK_KINDS)
def test_profiles_match_a_scalar_reference(kind: str) -> None:
    settings = fixed(window_min=45.0, step_min=0.5, depth=(0.4, 0.4), ramp_min=(1.5, 1.5), duration_min=(6.0, 6.0),
                     recovery_min=(2.5, 2.5), period_min=(3.0, 3.0), kind_weights=only(kind))
    sites = [ShockSite(2, 1.25, "a"), ShockSite(9, 0.8, "b")]
    drawn = draw_shocks(sites, settings, 40, np.random.default_rng(8))
    minutes = np.arange(90) * 0.5
    for s in range(drawn.count):
        for i, site in enumerate(sites):
            expected = reference_profile(minutes, float(drawn.onset_min[s, i]), kind, 0.4 * site.load_mw,
                                         1.5, 6.0, 2.5, 3.0)
            assert drawn.deviation_mw[s, i] == pytest.approx(expected, abs=1e-9)


def test_zero_ramp_and_recovery_are_steps() -> None:
    drawn = draw_shocks([ShockSite(1, 2.0, "a")], fixed(ramp_min=(0.0, 0.0), recovery_min=(0.0, 0.0),
                                                         kind_weights=only("surge")), 100, np.random.default_rng(4))
    minutes = np.arange(60.0)
    for s in range(drawn.count):
        onset = float(drawn.onset_min[s, 0])
        inside = (minutes >= onset) & (minutes < onset + 10.0)
        assert drawn.deviation_mw[s, 0] == pytest.approx(np.where(inside, 1.0, 0.0))
    assert drawn.disturbed_h == pytest.approx(np.full((100, 1), 10.0 / 60.0))


def test_no_event_rows() -> None:
    drawn = draw_shocks([ShockSite(1, 2.0, "a")], fixed(event_probability=0.0), 20, np.random.default_rng(1))
    assert (drawn.kind == -1).all()
    assert np.isnan(drawn.onset_min).all() and np.isnan(drawn.depth_fraction).all()
    assert (drawn.disturbed_h == 0).all()
    assert not drawn.deviation_mw.any()
    assert not np.signbit(drawn.deviation_mw).any()  # no -0.0 to print in a CSV


# --- frequencies ---------------------------------------------------------------------------------


def test_event_frequency_is_event_probability() -> None:
    settings = ShockSettings(event_probability=0.3)
    drawn = draw_shocks([ShockSite(1, 1.0, "a")], settings, 4000, np.random.default_rng(21))
    assert within_binomial(int((drawn.kind >= 0).sum()), 4000, 0.3)


def test_kind_shares_match_kind_weights() -> None:
    weights = {"drop": 0.5, "surge": 0.3, "oscillation": 0.2}
    # Listed in a different order from SHOCK_KINDS: the order of kind_weights must not matter.
    settings = ShockSettings(event_probability=1.0, kind_weights=tuple(reversed(list(weights.items()))))
    drawn = draw_shocks([ShockSite(1, 1.0, "a")], settings, 4000, np.random.default_rng(22))
    for code, kind in enumerate(SHOCK_KINDS):
        assert within_binomial(int((drawn.kind == code).sum()), 4000, weights[kind]), kind


def test_drawn_parameters_stay_in_their_ranges() -> None:
    drawn = draw_shocks([ShockSite(1, 2.0, "a")], ShockSettings(event_probability=1.0), 4000, np.random.default_rng(24))
    depth = drawn.depth_fraction[:, 0]
    assert depth.min() >= 0.2 and depth.max() <= 0.8
    assert abs(depth.mean() - 0.5) <= 4.0 * 0.6 / math.sqrt(12.0 * 4000)  # uniform on [0.2, 0.8]
    # Onset leaves room for ramp and hold (at most 35 min) in the 60-min window.
    assert drawn.onset_min.min() >= 0.0 and drawn.onset_min.max() < 55.0
    # ramp + duration + recovery lies in [6.5, 45] min; the window may cut it.
    minutes_disturbed = drawn.disturbed_h[:, 0] * 60.0
    assert minutes_disturbed.min() >= min(6.5, 60.0 - drawn.onset_min.max()) - 1e-9
    assert minutes_disturbed.max() <= 45.0 + 1e-9


def test_kind_weights_may_be_a_mapping() -> None:
    settings = ShockSettings(kind_weights={"surge": 0.25, "drop": 0.75})
    assert dict(settings.kind_weights) == {"surge": 0.25, "drop": 0.75}


def test_a_kind_of_weight_zero_is_never_drawn() -> None:
    settings = ShockSettings(event_probability=1.0, kind_weights=(("drop", 0.0), ("surge", 1.0)))
    drawn = draw_shocks([ShockSite(1, 1.0, "a")], settings, 500, np.random.default_rng(23))
    assert (drawn.kind == SURGE).all()


# --- correlation ---------------------------------------------------------------------------------


def test_full_owner_correlation_moves_sites_together_in_proportion_to_load() -> None:
    sites = [ShockSite(4, 1.0, "a"), ShockSite(9, 3.0, "a")]
    drawn = draw_shocks(sites, ShockSettings(event_probability=0.6, owner_correlation=1.0), 1000,
                        np.random.default_rng(31))
    assert (drawn.kind[:, 0] == drawn.kind[:, 1]).all()
    assert np.array_equal(drawn.onset_min[:, 0], drawn.onset_min[:, 1], equal_nan=True)
    np.testing.assert_allclose(drawn.deviation_mw[:, 1], 3.0 * drawn.deviation_mw[:, 0], rtol=1e-12, atol=1e-12)
    # Correlated sites fail together, and still only 60 % of the time.
    assert within_binomial(int((drawn.kind[:, 0] >= 0).sum()), 1000, 0.6)


def test_without_owner_correlation_kinds_agree_as_if_independent() -> None:
    sites = [ShockSite(4, 1.0, "a"), ShockSite(9, 3.0, "a")]
    drawn = draw_shocks(sites, ShockSettings(event_probability=1.0, owner_correlation=0.0), 4000,
                        np.random.default_rng(32))
    agree = 0.4**2 + 0.4**2 + 0.2**2  # default weights
    assert within_binomial(int((drawn.kind[:, 0] == drawn.kind[:, 1]).sum()), 4000, agree)


def test_different_owners_are_independent_even_with_full_correlation() -> None:
    sites = [ShockSite(4, 1.0, "a"), ShockSite(9, 1.0, "b")]
    drawn = draw_shocks(sites, ShockSettings(event_probability=1.0, owner_correlation=1.0), 4000,
                        np.random.default_rng(33))
    assert within_binomial(int((drawn.kind[:, 0] == drawn.kind[:, 1]).sum()), 4000, 0.36)


# --- determinism ---------------------------------------------------------------------------------

SITES = (ShockSite(3, 1.2, "a"), ShockSite(8, 0.7, "a"), ShockSite(12, 2.0, "b"))


def test_same_seed_same_bytes_and_different_seeds_differ() -> None:
    first = draw_shocks(SITES, ShockSettings(), 200, stream(7, "shocks"))
    again = draw_shocks(SITES, ShockSettings(), 200, stream(7, "shocks"))
    other = draw_shocks(SITES, ShockSettings(), 200, stream(8, "shocks"))
    for name in ("deviation_mw", "kind", "onset_min", "disturbed_h", "depth_fraction"):
        assert getattr(first, name).tobytes() == getattr(again, name).tobytes(), name
    assert not np.array_equal(first.deviation_mw, other.deviation_mw)


def test_more_scenarios_leave_the_first_ones_unchanged() -> None:
    small = draw_shocks(SITES, ShockSettings(), 30, np.random.default_rng(9))
    large = draw_shocks(SITES, ShockSettings(), 120, np.random.default_rng(9))
    assert small.deviation_mw.tobytes() == large.deviation_mw[:30].tobytes()


# --- subset, table, events -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def drawn() -> ShockScenarios:
    return draw_shocks(SITES, ShockSettings(window_min=30.0, step_min=0.5), 25, np.random.default_rng(41))


def test_table_is_long_and_sorted(drawn: ShockScenarios) -> None:
    table = drawn.table()
    count, n, steps = 25, 3, 60
    assert list(table.columns) == ["scenario", "bus", "owner", "minute", "deviation_mw"]
    assert len(table) == count * n * steps
    assert table["scenario"].is_monotonic_increasing
    row = 1 * n * steps + 2 * steps + 7  # scenario 1, third site (bus 12), step 7
    assert table.iloc[row][["scenario", "bus", "owner", "minute"]].tolist() == [1, 12, "b", 3.5]
    assert table["deviation_mw"].iloc[row] == drawn.deviation_mw[1, 2, 7]
    assert np.array_equal(table["deviation_mw"].to_numpy(), drawn.deviation_mw.reshape(-1))


def test_events_summarise_each_site_and_scenario(drawn: ShockScenarios) -> None:
    events = drawn.events()
    assert len(events) == 25 * 3
    assert list(events.columns) == ["scenario", "bus", "owner", "kind", "onset_min", "depth_fraction",
                                    "disturbed_h", "peak_up_mw", "peak_down_mw"]
    assert set(events["kind"]) <= set(SHOCK_KINDS) | {"none"}
    for row in events.itertuples():
        site = [s.bus for s in SITES].index(row.bus)
        profile = drawn.deviation_mw[row.scenario, site]
        code = drawn.kind[row.scenario, site]
        assert row.kind == ("none" if code < 0 else SHOCK_KINDS[code])
        assert row.peak_up_mw == max(profile.max(), 0.0)
        assert row.peak_down_mw == max(-profile.min(), 0.0)
        assert (row.kind == "none") == math.isnan(row.onset_min) == (row.disturbed_h == 0)


def test_needs_split_the_deviation(drawn: ShockScenarios) -> None:
    up, down = drawn.need_up_mw(), drawn.need_down_mw()
    assert (up >= 0).all() and (down >= 0).all()
    assert np.array_equal(up - down, drawn.deviation_mw)
    assert not ((up > 0) & (down > 0)).any()


def test_subset_keeps_rows_in_the_order_given(drawn: ShockScenarios) -> None:
    part = drawn.subset([4, 0, 4])
    assert part.count == 3 and part.sites == drawn.sites and part.settings == drawn.settings
    for name in ("deviation_mw", "kind", "onset_min", "disturbed_h"):
        assert np.array_equal(getattr(part, name), getattr(drawn, name)[[4, 0, 4]], equal_nan=True)
    assert np.array_equal(drawn.subset(slice(5, 10)).deviation_mw, drawn.deviation_mw[5:10])
    assert drawn.subset(drawn.kind[:, 0] >= 0).count == int((drawn.kind[:, 0] >= 0).sum())
    assert len(drawn.subset(slice(0, 2)).table()) == 2 * 3 * 60
    with pytest.raises(GridError, match=r"^rows: scenario 25 is out of range"):
        drawn.subset([0, 25])


def test_results_are_read_only(drawn: ShockScenarios) -> None:
    with pytest.raises(ValueError):
        drawn.deviation_mw[0, 0, 0] = 1.0


def test_scaled_shifts_one_field_and_checks_it() -> None:
    base = ShockSettings()
    deeper = base.scaled(depth=(0.6, 1.0))
    assert deeper.depth == (0.6, 1.0) and deeper.ramp_min == base.ramp_min
    assert ShockSettings(depth=[0.2, 0.8]).depth == (0.2, 0.8)  # lists from a config file
    assert ShockSettings(window_min=60, step_min=0.1).steps == 600
    with pytest.raises(GridError, match=r"^depth: "):
        base.scaled(depth=(0.6, 1.5))
    with pytest.raises(GridError, match=r"^deep: not a ShockSettings field"):
        base.scaled(deep=0.5)


# --- bad inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"window_min": 0.0}, "window_min"),
        ({"window_min": float("inf")}, "window_min"),
        ({"step_min": 0.7}, "step_min"),
        ({"step_min": -1.0}, "step_min"),
        ({"step_min": 90.0}, "step_min"),
        ({"event_probability": 1.5}, "event_probability"),
        ({"event_probability": True}, "event_probability"),
        ({"owner_correlation": -0.1}, "owner_correlation"),
        ({"kind_weights": (("drop", 0.5), ("surge", 0.4))}, "kind_weights"),
        ({"kind_weights": (("drop", 0.5), ("brownout", 0.5))}, "kind_weights"),
        ({"kind_weights": (("drop", 0.5), ("drop", 0.5))}, "kind_weights"),
        ({"kind_weights": (("drop", 1.5), ("surge", -0.5))}, "kind_weights"),
        ({"kind_weights": ()}, "kind_weights"),
        ({"depth": (0.9, 0.5)}, "depth"),
        ({"depth": (0.0, 0.5)}, "depth"),
        ({"depth": (0.5, 1.2)}, "depth"),
        ({"depth": 0.5}, "depth"),
        ({"ramp_min": (-1.0, 2.0)}, "ramp_min"),
        ({"duration_min": (5.0, 1.0)}, "duration_min"),
        ({"recovery_min": (float("nan"), 1.0)}, "recovery_min"),
        ({"period_min": (0.0, 2.0)}, "period_min"),
        ({"period_min": (1.0, 2.0, 3.0)}, "period_min"),
    ],
)
def test_bad_settings_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(GridError) as error:
        ShockSettings(**changes)
    message = str(error.value)
    assert message.startswith(f"{field}: ") and "\n" not in message


def test_inverted_range_message_says_the_fix() -> None:
    with pytest.raises(GridError) as error:
        ShockSettings(depth=(0.9, 0.5))
    assert str(error.value) == "depth: lower end 0.9 is above upper end 0.5; give [lo, hi] with lo <= hi"


@pytest.mark.parametrize(
    ("sites", "count", "rng", "start"),
    [
        ([ShockSite(1, 1.0, "a")], 0, "rng", "scenarios: "),
        ([ShockSite(1, 1.0, "a")], 2.5, "rng", "scenarios: "),
        ([], 5, "rng", "sites: "),
        ([ShockSite(7, 0.0, "a")], 5, "rng", "sites: bus 7 load_mw must be a positive number of MW"),
        ([ShockSite(7, float("nan"), "a")], 5, "rng", "sites: bus 7 load_mw must be a positive number of MW"),
        ([ShockSite(7, 1.0, "a"), ShockSite(7, 2.0, "b")], 5, "rng", "sites: bus 7 is listed twice"),
        ([(7, 1.0, "a")], 5, "rng", "sites: "),
        ([ShockSite(1, 1.0, "a")], 5, 42, "rng: "),
    ],
)
def test_bad_draw_inputs_name_the_culprit(sites: list, count: object, rng: object, start: str) -> None:
    generator = np.random.default_rng(0) if rng == "rng" else rng
    with pytest.raises(GridError) as error:
        draw_shocks(sites, ShockSettings(), count, generator)
    assert str(error.value).startswith(start)


def test_settings_must_be_shock_settings() -> None:
    with pytest.raises(GridError, match=r"^settings: "):
        draw_shocks([ShockSite(1, 1.0, "a")], {"window_min": 60}, 5, np.random.default_rng(0))


def test_a_count_that_would_not_fit_in_memory_is_refused_before_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1,000 x 2 x 60 float64 = 960 kB, above 60 % of 1 MB; 625 scenarios (600 kB) would fit.
    monkeypatch.setattr(shocks, "_available_memory_bytes", lambda: 1_000_000)
    rng = np.random.default_rng(0)
    with pytest.raises(GridError) as error:
        draw_shocks([ShockSite(1, 1.0, "a"), ShockSite(2, 1.0, "a")], ShockSettings(), 1000, rng)
    assert str(error.value) == (
        "scenarios: 1,000 scenarios x 2 sites x 60 steps need about 960 kB of deviations; this machine has "
        "1 MB available; use at most 625 scenarios or a longer step_min"
    )
    assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state  # nothing drawn
    assert draw_shocks([ShockSite(1, 1.0, "a"), ShockSite(2, 1.0, "a")], ShockSettings(), 625, rng).count == 625


# --- figure --------------------------------------------------------------------------------------


def test_plot_writes_the_same_png_twice(tmp_path: Path) -> None:
    scenarios = draw_shocks(SITES, ShockSettings(), 150, np.random.default_rng(51))
    first, second = tmp_path / "a" / "shocks.png", tmp_path / "b.png"
    plot_shocks(scenarios, first, title="Shocks, seed 51")
    plot_shocks(scenarios, second, title="Shocks, seed 51")
    data = first.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data == second.read_bytes()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.png", "shocks.png"]  # no temporary left


def test_plot_without_any_event(tmp_path: Path) -> None:
    scenarios = draw_shocks(SITES, ShockSettings(event_probability=0.0), 5, np.random.default_rng(52))
    plot_shocks(scenarios, tmp_path / "none.png")
    assert (tmp_path / "none.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=r"^examples: "):
        plot_shocks(scenarios, tmp_path / "bad.png", examples=-1)
    assert not (tmp_path / "bad.png").exists()
