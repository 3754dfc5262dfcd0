"""A list endpoint refuses a parameter it does not know, naming it, instead of ignoring it and
answering with everything; `status` on alarms means what people type it for."""

import pytest

from accounts.models import Role
from operations.models import AlarmType
from operations.services import alarms
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url", ["/api/v1/alarms?colour=red", "/api/v1/orders?paymentmethod=wechat", "/api/v1/devices?onlin=true"]
)
def test_an_unknown_parameter_is_a_400_naming_it(staff_client, merchant, url):
    reply = staff_client(Role.VIEWER, [merchant]).get(url)
    assert reply.status_code == 400, reply.content
    fields = reply.json()["error"]["details"]["fields"]
    assert list(fields) == [url.split("?")[1].split("=")[0]]
    assert "Known:" in fields[next(iter(fields))][0]


def test_paging_search_and_ordering_stay_known(staff_client, merchant):
    viewer = staff_client(Role.VIEWER, [merchant])
    assert viewer.get("/api/v1/orders?page=1&page_size=10").status_code == 200
    assert viewer.get("/api/v1/devices?query=CM&ordering=serial").status_code == 200


def test_alarms_by_status_active_leave_the_cleared_ones_out(staff_client, merchant):
    hot, recovered = DeviceFactory(merchant=merchant), DeviceFactory(merchant=merchant)
    alarms.temperature_reported(hot, 120.0)
    alarms.temperature_reported(recovered, 120.0)
    alarms.temperature_reported(recovered, 92.0)  # back in range: cleared
    viewer = staff_client(Role.VIEWER, [merchant])

    def devices_of(status):
        reply = viewer.get(f"/api/v1/alarms?status={status}&type={AlarmType.TEMPERATURE_OUT_OF_RANGE}")
        assert reply.status_code == 200, reply.content
        return [alarm["device_id"] for alarm in reply.json()["data"]["results"]]

    assert devices_of("active") == [hot.pk]
    assert devices_of("cleared") == [recovered.pk]
    assert viewer.get("/api/v1/alarms?status=actve").status_code == 400
