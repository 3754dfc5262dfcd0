"""The transport: HTTP calls in the protocol's envelope with a machine's retries (`ProtocolClient`), the
protocol's timestamps, and the checks on what the server answers."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from simulator.errors import ProtocolViolation, Rejected, Unauthorized, Unreachable
from simulator.sales import SaleOrder
from simulator.vocabulary import BadPayload

logger = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
REGISTER_PATH = f"{API_PREFIX}/devices/register"
REQUEST_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "coffeeshop-simulator/1"


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 with an offset, seconds precision, `Z` for UTC, as the protocol's examples write it."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("protocol timestamps need an offset; got a naive datetime")
    text = moment.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date); None when unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class Reply:
    status: int
    data: Any


Sleep = Callable[[float], Awaitable[None]]


class ProtocolClient:
    """HTTP calls in the protocol's envelope, shared by a fleet, with the retries a real machine does.

    Timeouts, connection drops, 502/503/504 and 429 are retried (429 after `Retry-After`), up to
    `attempts` tries with capped, jittered exponential backoff, then `Unreachable`. Error envelopes
    become `Rejected` (`Unauthorized` for 401) so a machine can decide; nothing else is caught.
    """

    RETRYABLE_STATUSES = frozenset({502, 503, 504})
    MAX_RETRY_AFTER_S = 300.0

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        attempts: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        self.client = client
        self.attempts = max(1, attempts)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def request(self, method: str, path: str, *, body: Any = None, token: str | None = None) -> Reply:
        return _unwrap(await self._exchange(method, path, body=body, token=token))

    async def download(self, url: str, *, token: str | None = None) -> bytes:
        """The bytes at `url` (a recipe package), with the same retries; the token goes only to the server.

        A URL on another host is fetched without the machine's token: a token never leaves its server.
        """
        target = self.client.base_url.join(url)
        same_server = (target.scheme, target.host, target.port) == (
            self.client.base_url.scheme,
            self.client.base_url.host,
            self.client.base_url.port,
        )
        response = await self._exchange("GET", str(target), token=token if same_server else None)
        if not response.is_success:
            _unwrap(response)  # raises the refusal
        return response.content

    async def _exchange(
        self, method: str, path: str, *, body: Any = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Device {token}"} if token else {}
        failure = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.client.request(method, path, json=body, headers=headers)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
                failure = f"{type(error).__name__}: {error}"
                delay = self._backoff(attempt)
            else:
                if response.status_code == 429:
                    failure = "429 throttled"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    delay = (
                        self._backoff(attempt)
                        if retry_after is None
                        else min(self.MAX_RETRY_AFTER_S, retry_after)
                    )
                elif response.status_code in self.RETRYABLE_STATUSES:
                    failure = f"{response.status_code} from server"
                    delay = self._backoff(attempt)
                else:
                    return response
            if attempt < self.attempts:
                logger.debug("%s %s failed (%s), retrying in %.2fs", method, path, failure, delay)
                await self._sleep(delay)
        raise Unreachable(f"{method} {path}: {failure} after {self.attempts} attempts")

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))


def _unwrap(response: httpx.Response) -> Reply:
    """The envelope's `data` on success; the error envelope as an exception otherwise."""
    try:
        envelope = response.json()
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("ok"), bool):
        if response.is_success:
            raise ProtocolViolation(f"{response.status_code} reply is not the protocol envelope")
        envelope = {"ok": False, "error": {"code": "UNKNOWN", "message": response.reason_phrase}}
    if envelope["ok"] and response.is_success:
        return Reply(response.status_code, envelope.get("data"))
    error = envelope.get("error") if isinstance(envelope.get("error"), dict) else {}
    code, message = str(error.get("code", "UNKNOWN")), str(error.get("message", ""))
    details = error.get("details") if isinstance(error.get("details"), dict) else None
    exception_class = Unauthorized if response.status_code == 401 else Rejected
    raise exception_class(response.status_code, code, message, details)


def _require(data: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    """A reply field the machine cannot work without, checked so a server slip is reported, not a crash."""
    if not isinstance(data, dict) or not isinstance(data.get(name), kind) or isinstance(data.get(name), bool):
        raise ProtocolViolation(f"reply field {name!r} missing or not {kind}")
    return data[name]


def _checked_payload(payload: Any, fields: Mapping[str, type]) -> dict[str, Any]:
    """The payload, if it has every field the machine needs with the right JSON type; else BadPayload."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadPayload("not an object")
    for name, kind in fields.items():
        value = payload.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadPayload(f"{name} missing or not {kind.__name__}")
    return payload


def _is_worth_retrying(error: Rejected) -> bool:
    """A new token (401) or a server in trouble (5xx) may take the call later; other refusals never will."""
    return isinstance(error, Unauthorized) or error.status >= 500


def _error_of(error: Rejected) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "details": error.details}


def _single_order_result(reply: Reply, order: SaleOrder) -> str:
    """A single order's answer: 201 accepted or 200 duplicate, for this order id; anything else is a slip."""
    result = _require(reply.data, "result", str)
    if reply.data.get("order_id") != order.order_id:
        raise ProtocolViolation(f"order reply names {reply.data.get('order_id')!r}, not {order.order_id!r}")
    if (reply.status, result) not in {(201, "accepted"), (200, "duplicate")}:
        raise ProtocolViolation(f"order reply {reply.status} with result {result!r}")
    return result


def _backlog_results(reply: Reply, orders: Sequence[SaleOrder]) -> list[dict[str, Any]]:
    """A backlog's answer: one entry per order, in order, each accepted, duplicate or rejected."""
    results = _require(reply.data, "results", list)
    if reply.status != 200 or len(results) != len(orders):
        raise ProtocolViolation(
            f"backlog of {len(orders)} answered {reply.status} with {len(results)} results"
        )
    for order, entry in zip(orders, results, strict=True):
        if not isinstance(entry, dict) or entry.get("result") not in {"accepted", "duplicate", "rejected"}:
            raise ProtocolViolation(
                f"backlog result for {order.order_id} is not a protocol result: {entry!r}"
            )
        if entry.get("order_id") != order.order_id:
            raise ProtocolViolation(
                f"backlog results out of order: {entry.get('order_id')!r} for {order.order_id!r}"
            )
    return results
