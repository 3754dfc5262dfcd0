"""Status history at fleet scale: complete hours folded into one row per machine (kept for good), raw
records pruned in batches after their days, only once folded."""

from datetime import UTC, datetime, timedelta

import pytest

from devices.models import DeviceStatusHistory, DeviceStatusHour, StatusEvent
from devices.services.history_rollup import fold_hour, prune_status_history, rollup_status_hours
from tests.factories import DeviceFactory, DeviceStatusHistoryFactory

pytestmark = pytest.mark.django_db

TEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return TEN + timedelta(minutes=minute)


def record(device, minute, *, online=True, event=StatusEvent.SAMPLE, temperature=None):
    return DeviceStatusHistoryFactory(
        device=device, recorded_at=at(minute), is_online=online, event=event, temperature_c=temperature
    )


@pytest.fixture
def day(merchant):
    flaky, newcomer, silent = (DeviceFactory(merchant=merchant) for _ in range(3))
    record(flaky, -10, temperature=91.0)  # 09:50: online as the hour begins
    record(flaky, 15, online=False, event=StatusEvent.OFFLINE)
    record(flaky, 45, event=StatusEvent.ONLINE, temperature=92.0)
    record(flaky, 50, temperature=94.0)
    record(newcomer, 30, event=StatusEvent.ONLINE, temperature=90.0)  # its first record ever
    record(silent, -120)  # 08:00: too long before the hour to say anything about it
    return flaky, newcomer, silent


def test_an_hour_is_folded_into_time_online_temperature_and_events_per_machine(day):
    flaky, newcomer, _silent = day

    fold_hour(TEN)

    hours = {h.device_id: h for h in DeviceStatusHour.objects.filter(hour=TEN)}
    assert set(hours) == {flaky.pk, newcomer.pk}
    f = hours[flaky.pk]
    assert (f.online_s, f.known_s) == (1800.0, 3600.0)  # offline from 10:15 to 10:45
    assert (f.samples, f.offline_events) == (3, 1)
    assert (f.avg_temperature_c, f.min_temperature_c, f.max_temperature_c) == (93.0, 92.0, 94.0)
    n = hours[newcomer.pk]
    assert (n.online_s, n.known_s, n.samples) == (1800.0, 1800.0, 1)  # known only from 10:30


def test_folding_again_overwrites_the_same_hours_so_a_cut_short_run_is_simply_redone(day):
    flaky, *_ = day
    fold_hour(TEN)
    DeviceStatusHour.objects.filter(device=flaky).update(online_s=0, samples=99)  # as a killed run left it

    fold_hour(TEN)

    f = DeviceStatusHour.objects.get(device=flaky, hour=TEN)
    assert (f.online_s, f.samples, DeviceStatusHour.objects.count()) == (1800.0, 3, 2)


def test_the_rollup_folds_complete_hours_only_and_moves_on(day):
    assert rollup_status_hours(now=at(59)) == 2  # 08:00 and 09:00; 10:00 is not over yet
    assert rollup_status_hours(now=at(61)) == 1  # now 10:00
    assert rollup_status_hours(now=at(62)) == 0
    assert set(DeviceStatusHour.objects.values_list("hour", flat=True)) == {
        TEN - timedelta(hours=2),
        TEN - timedelta(hours=1),
        TEN,
    }


def test_raw_history_is_pruned_after_its_days_in_batches_and_never_before_it_is_folded(day, settings):
    settings.STATUS_HISTORY_RAW_DAYS = 1
    rollup_status_hours(now=at(61))  # folded up to 11:00
    later = DeviceFactory()
    DeviceStatusHistoryFactory(device=later, recorded_at=TEN + timedelta(hours=30))  # not folded yet
    hours_before = list(DeviceStatusHour.objects.values_list("device_id", "hour", "online_s"))

    pruned = prune_status_history(now=TEN + timedelta(days=3), batch=2)

    # Every record before 10:45, two per transaction; 10:45 and 10:50 still say how 11:00 begins.
    assert pruned == 4
    left = DeviceStatusHistory.objects.order_by("recorded_at").values_list("device_id", "recorded_at")
    assert list(left) == [(day[0].pk, at(45)), (day[0].pk, at(50)), (later.pk, TEN + timedelta(hours=30))]
    assert list(DeviceStatusHour.objects.values_list("device_id", "hour", "online_s")) == hours_before


def test_days_in_which_nothing_was_recorded_are_skipped_not_folded_forever(merchant, settings):
    settings.STATUS_FOLD_HOURS_PER_RUN = 24
    machine = DeviceFactory(merchant=merchant)
    record(machine, 5)
    DeviceStatusHistoryFactory(device=machine, recorded_at=TEN + timedelta(days=3, minutes=5), is_online=True)
    now = TEN + timedelta(days=3, hours=2)

    rollup_status_hours(now=now)  # 10:00 on the first day, then the empty day after it
    rollup_status_hours(now=now)  # straight to the third day's 10:00 and 11:00

    hours = list(DeviceStatusHour.objects.filter(device=machine).values_list("hour", flat=True))
    assert hours[0] == TEN and TEN + timedelta(days=3) in hours
