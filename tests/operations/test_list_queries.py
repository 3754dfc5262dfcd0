"""Every operations list endpoint runs the same number of queries for a few rows as for many."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from operations.models import AlarmType, Severity
from operations.services import alarms, commands
from tests.factories import DeviceFactory
from tests.operations.batches import sent_batch

pytestmark = pytest.mark.django_db

LISTS = [
    "/api/v1/alarms",
    "/api/v1/commands",
    "/api/v1/commands/batches",
    "/api/v1/audit",
    "/api/v1/jobs",
    "/api/v1/devices",
    "/api/v1/locations",
    "/api/v1/merchants",
]


def make_rows(merchant, user, n):
    from devices.models import Device

    for _ in range(n):
        device = DeviceFactory(merchant=merchant)
        alarms.open_or_bump_alarm(device, AlarmType.OFFLINE, Severity.CRITICAL)
        commands.send_command(device, "unlock", {}, user=user)
    sent_batch(Device.objects.filter(merchant=merchant), "sync", {"what": ["status"]}, user=user)


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", LISTS)
def test_a_list_costs_the_same_queries_for_two_rows_as_for_twelve(url, staff_client, merchant):
    admin = staff_client(Role.ADMIN, [merchant])
    make_rows(merchant, admin.user, 2)
    queries_for(admin, url)  # warm: content types and the user's merchants are cached after the first
    few = queries_for(admin, url)
    make_rows(merchant, admin.user, 10)
    assert queries_for(admin, url) == few
