"""The staff and the bins: rounds on a schedule top up the low bins, an empty bin gets a call-out,
a forgotten refill report leaves only the heartbeat's level to show it, and a day's drain takes bins
under the server's low threshold."""

from simulator import (
    DEFAULT_BINS,
    DEFAULT_FORGET_REFILL_PROBABILITY,
    DEFAULT_REFILL_ROUND_TICKS,
    EventKind,
    FleetSession,
    ProtocolClient,
    RefillRounds,
)
from tests.simulator.fakes import SECRET, FakeServer, fake_client, fly, make_machine

SERVER_LOW_SHARE = 0.15  # the server's default low-stock threshold, 15 %
TICKS_PER_DAY = 24 * 3600 // 30  # heartbeats of 30 s, the server's default interval
NO_ROUNDS = RefillRounds(every_ticks=1e12, forget_report_probability=0.0)


def set_shares(machine, shares):
    for level, share in zip(machine.bins, shares, strict=True):
        level.remaining = level.spec.capacity * share


def shares_of(machine):
    return [round(level.share, 3) for level in machine.bins]


def test_a_round_tops_up_the_bins_under_its_share_and_leaves_the_fuller_ones_alone():
    machine = make_machine()
    # every_ticks=1: the first round is due at the first step.
    machine.schedule_refills(RefillRounds(every_ticks=1, below_share=0.3, forget_report_probability=0.0))
    set_shares(machine, [0.10, 0.25, 0.60, 0.90, 0.45])

    reported = machine.step()

    assert reported == [1, 2]
    assert machine.refill_rounds_made == 1
    after = shares_of(machine)
    assert after[0] >= 0.85 and after[1] >= 0.85, "topped up as staff do: to 85-100 %"
    assert after[2] <= 0.60 and after[3] <= 0.90 and after[4] <= 0.45, "fuller bins only drained"
    assert machine.forgotten_refills == []
    body = machine.materials_body(set(reported))
    assert [(b["index"], b["refilled"]) for b in body["bins"]] == [(1, True), (2, True)]


def test_between_rounds_a_low_bin_stays_low_and_only_an_empty_one_gets_a_call_out():
    machine = make_machine()
    machine.schedule_refills(NO_ROUNDS)
    # A tick draws at most 2.2 % of beans, milk or sugar: four ticks cannot empty them.
    set_shares(machine, [0.12, 0.12, 0.12, 0.9, 0.9])

    early = [index for _ in range(4) for index in machine.step()]

    assert early == [], "nobody rescues a bin that is only low"
    assert all(0.0 < share < SERVER_LOW_SHARE for share in shares_of(machine)[:3]), "they stay low"

    machine.bins[4].remaining = 0.0
    later = [index for _ in range(60) for index in machine.step()]

    assert 5 in later, "someone came out for the empty water bin"
    assert machine.refill_rounds_made == 0


def test_a_forgotten_refill_is_not_reported_but_the_next_heartbeat_carries_its_level():
    machine = make_machine()
    machine.schedule_refills(RefillRounds(every_ticks=1, forget_report_probability=1.0))
    set_shares(machine, [0.05, 0.9, 0.9, 0.9, 0.9])

    assert machine.step() == [], "nothing to report"
    assert machine.forgotten_refills == [1]
    assert machine.materials_body(machine.unreported_refills)["bins"] == []
    beans = next(b for b in machine.heartbeat_body()["bins"] if b["index"] == 1)
    assert beans["remaining"] >= 0.85 * beans["capacity"]
    assert "refilled" not in beans, "heartbeat bins carry no refilled field"


async def test_a_tick_reports_the_remembered_refills_and_leaves_the_forgotten_ones_to_the_heartbeat():
    server, events = FakeServer(), []
    machine = make_machine(seed=3)
    machine.schedule_refills(RefillRounds(every_ticks=1, forget_report_probability=0.5))
    set_shares(machine, [0.0] * len(DEFAULT_BINS))

    async with fake_client(server) as client:
        session = FleetSession(ProtocolClient(client), SECRET, on_event=events.append)
        await machine.register(session)
        await machine.tick(session)

    (report,) = server.material_reports
    reported = {b["index"] for b in report["bins"]}
    forgotten = {spec.index for spec in DEFAULT_BINS} - reported
    assert reported and forgotten, "this seed forgets some refills and reports the others"
    assert all(b["refilled"] is True and b["remaining"] >= 0.85 * b["capacity"] for b in report["bins"])
    (heartbeat,) = server.heartbeats
    levels = {b["index"]: b["remaining"] / b["capacity"] for b in heartbeat["bins"]}
    assert all(levels[index] >= 0.85 for index in forgotten), "the heartbeat shows the forgotten refills"
    unreported = [e.detail for e in events if e.kind == EventKind.REFILL_UNREPORTED]
    assert sorted(int(detail.split()[1]) for detail in unreported) == sorted(forgotten)
    assert session.stats.refills_unreported == len(forgotten)
    assert machine.forgotten_refills == [], "each announced once"


def test_a_days_drain_with_the_default_rounds_takes_bins_under_the_low_threshold_and_sometimes_empty():
    machine = make_machine(seed=11)
    assert machine.refill_rounds == RefillRounds()
    readings = []  # (index, share) as the server reads them from the heartbeats
    for _ in range(TICKS_PER_DAY):
        machine.step()
        readings += [(b["index"], b["remaining"] / b["capacity"]) for b in machine.heartbeat_body()["bins"]]
        if machine.rng.random() < 12 / 120:  # the default 12 sales an hour, 120 heartbeats an hour
            machine.brew(machine.make_order())

    low = [index for index, share in readings if share <= SERVER_LOW_SHARE]
    empty = [index for index, share in readings if share == 0]
    assert len(set(low)) >= 3, "several bins run low, not only the water"
    assert 0.02 <= len(low) / len(readings) <= 0.2, "low regularly, yet mostly not"
    assert empty, "now and then one runs empty"
    assert len(empty) / len(readings) < 0.03, "the call-out and the rounds keep empties short"
    assert machine.refill_rounds_made >= TICKS_PER_DAY / DEFAULT_REFILL_ROUND_TICKS * 0.8
    assert machine.forgotten_refills, "some refills went unreported over the day"


def test_the_defaults_forget_about_one_refill_in_ten():
    machine = make_machine(seed=5)
    reported, forgotten = 0, 0
    for _ in range(TICKS_PER_DAY):
        reported += len(machine.step())
        forgotten, machine.forgotten_refills = forgotten + len(machine.forgotten_refills), []

    assert DEFAULT_FORGET_REFILL_PROBABILITY == 0.1
    assert 0.05 <= forgotten / (reported + forgotten) <= 0.15


async def test_a_fleet_hands_its_refill_options_to_every_machine():
    server, events = FakeServer(), []

    stats = await fly(
        server, events, devices=2, duration_s=1.0, refill_round_intervals=1, forget_refill_probability=1.0
    )

    assert stats.refill_rounds >= 0.7 * stats.heartbeats_sent, "a round about every tick"
    assert stats.refills_unreported > 0
    assert stats.refills_unreported == sum(1 for e in events if e.kind == EventKind.REFILL_UNREPORTED)
    assert server.material_reports == [], "every refill was forgotten"
