"""The machine's physics, pure and stepped by hand: the boiler, the bins, the states, and the
misbehaviour episodes (overheating, running dry, going silent) on a fake clock."""

import random
import statistics

from simulator import DEFAULT_BINS, BinLevel, BoilerTemperature, Episodes, EpisodeTiming
from tests.simulator.fakes import clocked_machine, make_machine

# --- Physics -----------------------------------------------------------------------------------------


def test_boiler_temperature_stays_physical_and_hovers_around_92c_over_10k_steps():
    boiler, rng = BoilerTemperature(), random.Random(1)

    readings = [boiler.step(rng) for _ in range(10_000)]

    assert all(BoilerTemperature.FLOOR_C <= reading <= BoilerTemperature.CEILING_C for reading in readings)
    assert 91.5 <= statistics.median(readings) <= 92.5
    assert 90.5 <= statistics.mean(readings) <= 93.0
    within_a_degree = sum(1 for reading in readings if abs(reading - 92.0) <= 1.0)
    assert within_a_degree / len(readings) > 0.7, "mostly near the setpoint"
    assert min(readings) < 88.0, "it has dips"
    assert max(readings) > 94.0, "it has overshoots"


def test_bin_levels_never_leave_zero_to_capacity_and_every_bin_runs_low_and_gets_refilled():
    machine = make_machine()
    refills: list[int] = []

    for _ in range(10_000):
        refills.extend(machine.step())
        for level in machine.bins:
            assert 0.0 <= level.remaining <= level.spec.capacity

    assert {spec.index for spec in DEFAULT_BINS} <= set(refills), "every bin ran low and was refilled"


def test_a_bin_draw_larger_than_its_content_empties_it_and_a_fill_never_overflows_it():
    level = BinLevel(DEFAULT_BINS[0], 30.0)

    level.draw(500)
    assert level.remaining == 0.0
    level.fill_to(10 * DEFAULT_BINS[0].capacity)
    assert level.remaining == DEFAULT_BINS[0].capacity


def test_the_machine_is_mostly_idle_but_sometimes_brews_or_cleans():
    machine = make_machine()
    states = []
    for _ in range(2_000):
        machine.step()
        states.append(machine.state)

    assert set(states) == {"idle", "brewing", "cleaning"}
    assert states.count("idle") > len(states) / 2


def test_default_bins_are_a_catalogue_with_unique_indexes_and_material_codes():
    assert [spec.index for spec in DEFAULT_BINS] == [1, 2, 3, 4, 5]
    assert len({spec.material for spec in DEFAULT_BINS}) == len(DEFAULT_BINS)
    assert {spec.material for spec in DEFAULT_BINS} >= {"BEAN-ARABICA", "MILK-POWDER", "WATER"}


def test_an_episode_starts_after_its_delay_lasts_its_time_and_comes_back_later():
    timing = EpisodeTiming(first_after_s=(10.0, 10.0), lasts_s=(5.0, 5.0), every_s=(100.0, 100.0))
    episodes = Episodes(timing, random.Random(1), now=0.0)

    seen = [t for t in range(0, 250) if episodes.is_on(float(t))]
    later = Episodes(timing, random.Random(1), now=0.0)

    assert seen == [*range(10, 15), *range(115, 120), *range(220, 225)]
    assert later.remaining_s(5.0) == 0.0
    assert later.remaining_s(11.5) == 3.5
    assert later.remaining_s(16.0) == 0.0


def test_an_overheating_boiler_climbs_above_100c_then_cools_back_into_the_brewing_range():
    boiler, rng = BoilerTemperature(), random.Random(2)

    boiler.overheating = True
    hot = [boiler.step(rng) for _ in range(20)]
    boiler.overheating = False
    cooling = [boiler.step(rng) for _ in range(20)]

    assert max(hot) > 100.0 and hot[-1] > 100.0
    assert all(reading <= BoilerTemperature.OVERHEAT_CEILING_C for reading in hot)
    assert cooling[0] > 98.0, "it cools step by step, it does not jump back"
    assert 88.0 <= cooling[-1] <= 96.0


def test_an_overheating_machine_reports_the_heat_only_during_its_episode():
    machine, clock = clocked_machine()
    machine.misbehave(["overheat"], {"overheat": EpisodeTiming((60.0, 60.0), (300.0, 300.0), (9e9, 9e9))})
    before, during, after = [], [], []

    for _ in range(10):
        machine.step()
        clock.now += 5
        before.append(machine.heartbeat_body()["temperature_c"])
    clock.now = 1000.0 + 60
    for _ in range(30):
        machine.step()
        clock.now += 5
        during.append(machine.heartbeat_body()["temperature_c"])
    clock.now = 1000.0 + 400
    for _ in range(30):
        machine.step()
        after.append(machine.heartbeat_body()["temperature_c"])

    assert max(before) < 98.0
    assert max(during) > 100.0
    assert max(after[-10:]) < 98.0, "recovered"


def test_a_machine_running_dry_reports_one_bin_low_then_empty_then_refilled():
    machine, clock = clocked_machine()
    machine.misbehave(["run_dry"], {"run_dry": EpisodeTiming((30.0, 30.0), (100.0, 100.0), (9e9, 9e9))})
    machine.step()
    assert machine.dry_bin is None

    clock.now += 30
    assert machine.step() == []
    dry = machine.dry_bin
    level = next(b for b in machine.heartbeat_body()["bins"] if b["index"] == dry)
    assert 0 < level["remaining"] <= 0.1 * level["capacity"], "low first"
    clock.now += 10
    for _ in range(30):
        refilled = machine.step()
        assert dry not in refilled, "nobody refills it while it runs dry"
    assert next(b for b in machine.heartbeat_body()["bins"] if b["index"] == dry)["remaining"] == 0

    clock.now += 100
    refilled = machine.step()
    assert dry in refilled and machine.dry_bin is None
    assert next(b for b in machine.materials_body({dry})["bins"])["refilled"] is True
    assert machine.bins[dry - 1].remaining >= 0.85 * machine.bins[dry - 1].spec.capacity


def test_a_machine_going_silent_knows_how_long_its_silence_lasts():
    machine, clock = clocked_machine()
    assert machine.silence_due_s() == 0.0
    machine.misbehave(["go_silent"], {"go_silent": EpisodeTiming((5.0, 5.0), (20.0, 20.0), (9e9, 9e9))})

    assert machine.silence_due_s() == 0.0
    clock.now += 8
    assert machine.silence_due_s() == 17.0
