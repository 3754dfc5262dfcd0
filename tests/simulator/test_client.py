"""The transport: the protocol's timestamps, Retry-After, and the retries and refusals of ProtocolClient."""

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from simulator import Rejected, Unauthorized, Unreachable, format_timestamp, parse_retry_after
from tests.simulator.fakes import envelope, error, protocol_client


def test_timestamps_are_iso8601_with_an_offset_and_naive_times_are_refused():
    assert format_timestamp(datetime(2026, 11, 24, 8, 15, 0, 123456, tzinfo=UTC)) == "2026-11-24T08:15:00Z"
    china = timezone(timedelta(hours=8))
    assert format_timestamp(datetime(2026, 11, 24, 8, 14, 31, tzinfo=china)) == "2026-11-24T08:14:31+08:00"
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 11, 24, 8, 15))


def test_retry_after_reads_seconds_and_http_dates_and_ignores_garbage():
    now = datetime(2026, 11, 24, 8, 15, tzinfo=UTC)

    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after("Tue, 24 Nov 2026 08:15:30 GMT", now) == 30.0
    assert parse_retry_after("Tue, 24 Nov 2026 08:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# --- Transport ---------------------------------------------------------------------------------------


async def test_a_throttled_call_waits_the_retry_after_then_succeeds():
    replies = iter([error(429, "THROTTLED", headers={"Retry-After": "7"}), envelope({"fine": True})])
    api, sleeps = protocol_client(lambda request: next(replies))

    reply = await api.request("POST", "/api/v1/devices/1/status", body={"state": "idle"}, token="t")

    assert reply.data == {"fine": True}
    assert sleeps == [7.0]


async def test_timeouts_are_retried_with_growing_backoff_then_reported_unreachable():
    calls = []

    def time_out(request):
        calls.append(request)
        raise httpx.ConnectTimeout("slow", request=request)

    api, sleeps = protocol_client(time_out, attempts=4)

    with pytest.raises(Unreachable):
        await api.request("POST", "/api/v1/devices/register", body={})

    assert len(calls) == 4
    assert len(sleeps) == 3, "no sleep after the last attempt"
    assert all(0 <= delay <= api.backoff_base_s * 2**attempt for attempt, delay in enumerate(sleeps))


async def test_every_call_but_registration_carries_the_device_token():
    seen = []

    def handler(request):
        seen.append(request.headers.get("Authorization"))
        return envelope({})

    api, _ = protocol_client(handler)
    await api.request("POST", "/api/v1/devices/register", body={})
    await api.request("POST", "/api/v1/devices/1/status", body={}, token="abc")

    assert seen == [None, "Device abc"]


async def test_error_envelopes_become_rejections_and_401_asks_for_reregistration():
    replies = iter(
        [
            error(401, "UNAUTHORIZED", "token revoked"),
            error(400, "VALIDATION_ERROR", "bad", {"fields": {"bins.0.material": ["unknown"]}}),
            httpx.Response(500, text="<html>oops</html>"),
        ]
    )
    api, _ = protocol_client(lambda request: next(replies))

    with pytest.raises(Unauthorized):
        await api.request("POST", "/x", body={}, token="t")
    with pytest.raises(Rejected) as rejected:
        await api.request("POST", "/x", body={}, token="t")
    assert rejected.value.code == "VALIDATION_ERROR"
    assert rejected.value.details == {"fields": {"bins.0.material": ["unknown"]}}
    with pytest.raises(Rejected) as crashed:
        await api.request("POST", "/x", body={}, token="t")
    assert crashed.value.status == 500
