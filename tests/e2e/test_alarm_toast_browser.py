"""A critical alarm reaches an open alarm list without a reload, and is acknowledged from where it
appears in one click."""

import httpx

from tests.e2e.browser import BROWSER_TEST, in_other_thread, ops_signed_in_with_a_machine_online

pytestmark = BROWSER_TEST


def flush_heartbeats():
    from operations.tasks import flush_heartbeats as flush

    return flush()


def test_ops_user_acknowledges_a_new_critical_alarm_from_its_notice(live_asgi_server):
    from playwright.sync_api import expect

    with ops_signed_in_with_a_machine_online(
        live_asgi_server, "ops@toast.example.com", "Sup3r-Secret!", "TOAST-0001", "/admin/operations/alarm/"
    ) as (page, device_id, token):
        page.wait_for_timeout(500)  # the live socket connects
        empty_bin = {"index": 1, "material": "BEAN-ARABICA", "remaining": 0, "capacity": 1000, "unit": "g"}
        reply = httpx.post(
            f"{live_asgi_server.url}/api/v1/devices/{device_id}/status",
            json={"state": "idle", "temperature_c": 92.1, "bins": [empty_bin]},
            headers={"Authorization": f"Device {token}"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        in_other_thread(flush_heartbeats)  # with Redis the level was written behind, as beat would flush it

        notice = page.get_by_role("alert").filter(has_text="Material empty")
        expect(notice).to_be_visible(timeout=10_000)
        notice.get_by_role("button", name="Acknowledge").click()
        expect(notice.get_by_role("button", name="Acknowledged")).to_be_visible(timeout=10_000)

    def acknowledgement():
        from operations.models import Alarm, AlarmType

        alarm = Alarm.objects.select_related("acknowledged_by").get(
            device_id=device_id, type=AlarmType.MATERIAL_EMPTY
        )
        return alarm.is_active, alarm.acknowledged_by.email

    assert in_other_thread(acknowledgement) == (True, "ops@toast.example.com")
