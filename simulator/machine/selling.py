"""Selling: customers arrive on the daily curve, each sale goes up at once or waits in the outbox, and
backlogs, re-sends after lost replies and refusals are booked."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from simulator.client import Reply, _backlog_results, _error_of, _is_worth_retrying, _single_order_result
from simulator.errors import ProtocolError, Rejected
from simulator.sales import SaleOrder, backlog_chunks
from simulator.session import EventKind, FleetSession, OrderRecord

logger = logging.getLogger(__name__)


class Selling:
    """Trade and the order calls: a sale leaves `outbox` only once the server has answered for it."""

    async def trade(self, session: FleetSession, duration_s: float) -> None:
        """Spend `duration_s` serving customers, who come as a Poisson process following the daily curve.

        Arrivals are drawn at the curve's peak rate and each is kept with probability rate(now) / peak
        (thinning), so the rate follows the hour even across long quiet spells.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        peak = session.settings.peak_sales_per_hour
        while not session.stopping.is_set():
            if peak <= 0:
                await session.pause(end - loop.time())
                return
            if self._next_customer_at is None:
                self._next_customer_at = loop.time() + self.rng.expovariate(peak / 3600.0)
            if self._next_customer_at > end:
                await session.pause(end - loop.time())
                return
            if await session.pause(self._next_customer_at - loop.time()):
                return
            self._next_customer_at = None
            shop_time = self.machine_time().astimezone(self.region.shop_timezone)
            # A locked machine serves nobody, nor does one whose package has no recipes.
            if (
                self.rng.random() * peak < session.settings.sales_rate_per_hour(shop_time)
                and not self.is_locked
                and self.menu
            ):
                await self.sell(session)

    async def sell(self, session: FleetSession) -> SaleOrder:
        """A customer buys: make the order, brew it, and send it now, or keep it while offline."""
        order = self.make_order()
        session.order_numbers.note_used(self.serial, self.next_order_number)
        session.stats.orders_sold += 1
        if order.body["payment"]["status"] != "failed":  # no cup for a payment that failed
            self.brew(order)
        self.outbox.append(order)
        if not self.is_reachable:
            self._note_waiting(session)
            session.emit(
                EventKind.SOLD, self.serial, f"{order.describe()} (offline: {len(self.outbox)} waiting)"
            )
            return order
        session.emit(EventKind.SOLD, self.serial, order.describe())
        # Older orders still waiting go first, with this one, so the server hears them in the order sold.
        await self._attempt(session, self.send_order if len(self.outbox) == 1 else self.upload_backlog)
        return order

    async def send_order(self, session: FleetSession) -> None:
        """Send the one waiting order on its own (a fresh sale); without an answer it stays waiting."""
        (order,) = self.outbox
        try:
            reply = await self._post_orders(session, order.body)
            result = _single_order_result(reply, order)
        except Rejected as error:
            if _is_worth_retrying(error):
                self._keep_for_later(session)
                raise
            self.outbox.remove(order)
            self._refused(session, order, _error_of(error))
            return
        except ProtocolError:
            self._keep_for_later(session)
            raise
        self.outbox.remove(order)
        self._answered(session, order, result)
        if self.rng.random() < session.settings.duplicate_probability:
            await self._resend([order], session, as_backlog=False)

    async def upload_backlog(self, session: FleetSession) -> None:
        """Upload every waiting order, oldest first, in chunks the server takes; stop at the first failure."""
        for chunk in backlog_chunks(list(self.outbox)):
            try:
                results = _backlog_results(
                    await self._post_orders(session, {"orders": [o.body for o in chunk]}), chunk
                )
            except Rejected as error:
                if _is_worth_retrying(error):
                    self._keep_for_later(session)
                    raise
                # The whole request was refused (a server with a smaller limit, say): say so, don't loop.
                results = [{"result": "rejected", "error": _error_of(error)}] * len(chunk)
            except ProtocolError:
                self._keep_for_later(session)
                raise
            del self.outbox[: len(chunk)]
            session.stats.backlogs_uploaded += 1
            answered = []
            for order, entry in zip(chunk, results, strict=True):
                if entry["result"] == "rejected":
                    self._refused(session, order, entry.get("error") or {})
                else:
                    self._answered(session, order, entry["result"])
                    answered.append(order)
            tally = ", ".join(
                f"{sum(1 for e in results if e['result'] == kind)} {kind}"
                for kind in ("accepted", "duplicate", "rejected")
            )
            session.emit(EventKind.BACKLOG, self.serial, f"{len(chunk)} orders uploaded: {tally}")
            if answered and self.rng.random() < session.settings.duplicate_probability:
                await self._resend(answered, session, as_backlog=True)

    async def _post_orders(self, session: FleetSession, body: dict[str, Any]) -> Reply:
        return await session.api.request("POST", self.path("orders/create"), body=body, token=self.token)

    async def _resend(self, orders: list[SaleOrder], session: FleetSession, *, as_backlog: bool) -> None:
        """A lost reply: the machine never heard the answer, so it sends the same orders again."""
        session.stats.orders_resent += len(orders)
        try:
            if as_backlog:
                reply = await self._post_orders(session, {"orders": [order.body for order in orders]})
                entries = _backlog_results(reply, orders)
            else:
                reply = await self._post_orders(session, orders[0].body)
                entries = [{"result": _single_order_result(reply, orders[0])}]
        except Rejected as error:
            if _is_worth_retrying(error):
                logger.warning(
                    "%s: re-sending %d answered orders failed: %s", self.serial, len(orders), error
                )
                return
            entries = [{"result": "rejected", "error": _error_of(error)}] * len(orders)
        except ProtocolError as error:
            # Nothing is lost: the server answered for these orders before.
            logger.warning("%s: re-sending %d answered orders failed: %s", self.serial, len(orders), error)
            return
        for order, entry in zip(orders, entries, strict=True):
            if entry["result"] == "duplicate":
                session.stats.orders_duplicate += 1
                session.emit(EventKind.DUPLICATE, self.serial, f"{order.order_id} re-sent after a lost reply")
            elif entry["result"] == "accepted":
                session.stats.orders_accepted += 1
                logger.error(
                    "%s: order %s was accepted a second time: the server had lost it",
                    self.serial,
                    order.order_id,
                )
            else:
                self._refused(session, order, entry.get("error") or {})

    def _answered(self, session: FleetSession, order: SaleOrder, result: str) -> None:
        """The server has the order (first answer): book it as delivered, once."""
        if result == "accepted":
            session.stats.orders_accepted += 1
        else:
            session.stats.orders_duplicate += 1
        session.stats.delivered.append(OrderRecord(self.serial, order.order_id, order.total))

    def _refused(self, session: FleetSession, order: SaleOrder, error: dict[str, Any]) -> None:
        """A refused order is dropped, never retried forever: sending it again would be refused again."""
        code, message = error.get("code", "UNKNOWN"), error.get("message", "")
        if code == "CONFLICT":
            # A correct machine never reuses an order id for other content: this is a simulator bug.
            session.stats.orders_conflict += 1
            logger.error(
                "%s: order %s got a conflict (409): %s %s",
                self.serial,
                order.order_id,
                message,
                error.get("details") or "",
            )
            session.emit(EventKind.CONFLICT, self.serial, f"{order.order_id}: {message}")
            return
        session.stats.orders_rejected += 1
        logger.warning(
            "%s: order %s rejected and dropped: %s %s %s",
            self.serial,
            order.order_id,
            code,
            message,
            error.get("details") or "",
        )
        session.emit(EventKind.REJECTED, self.serial, f"{order.order_id}: {code} {message}")

    def _keep_for_later(self, session: FleetSession) -> None:
        """An upload got no usable answer: its orders stay waiting (the server may have them: duplicates)."""
        session.stats.order_uploads_failed += 1
        self._note_waiting(session)

    def _note_waiting(self, session: FleetSession) -> None:
        session.stats.orders_buffered_max = max(session.stats.orders_buffered_max, len(self.outbox))
