"""The first `make run`, end to end: seed-demo's week behind the dashboard, then the real simulate-fleet
of Shanghai and of London (as the Procfile runs them) against the real server on that database. Both
fleets take over their seeded machines (re-registering them for a new token), sell without reusing a
seeded order id, and each merchant's sales today grow, in its own currency."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Merchant, User
from audit.models import OperationLog
from devices.models import Device
from operations.dashboard import dashboard_summary, scope_for
from orders.models import Order
from tests.e2e.conftest import ROOT, _database_url_of_test_db, asgi_server, in_thread

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FLEETS = {
    "Demo Coffee Co": ["--devices", "2"],
    "Bean Machine Ltd": ["--region", "uk", "--serial-prefix", "BML", "--devices", "1"],
}
GROWTH = 5  # orders today beyond the seeded ones, per merchant
DEADLINE_S = 120


def _today(merchant_name: str) -> dict:
    merchant = Merchant.objects.get(name=merchant_name)
    now = timezone.now()
    summary = dashboard_summary(
        scope_for(User.objects.get(email="admin@example.com"), merchant_id=merchant.pk, now=now), now=now
    )
    (today,) = summary["sales_today"] or [{"orders": 0, "currency": merchant.currency}]
    return {"orders": today["orders"], "currency": today["currency"]}


def _fleet(name: str, url: str, env: dict, log) -> subprocess.Popen:
    command = [sys.executable, "manage.py", "simulate-fleet", "--merchant", name, *FLEETS[name]]
    command += ["--base-url", url, "--heartbeat-interval", "1", "--sales-per-hour", "1800", "--flat-sales"]
    command += ["--misbehave", "none", "--offline-probability", "0", "--duration", str(DEADLINE_S + 30)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


async def test_both_merchants_sales_today_grow_from_the_seeded_week_as_their_live_fleets_sell(
    django_db_blocker, tmp_path_factory, tmp_path, settings
):
    settings.DATA_DIR = tmp_path  # the seeded order counters, where the fleets read them
    await in_thread(call_command, "seed-demo", "--fleet-size=2", "--london-fleet-size=1", verbosity=0)
    seeded = {name: await in_thread(_today, name) for name in FLEETS}
    devices = await in_thread(lambda: sorted(Device.objects.values_list("pk", "serial")))
    assert {serial for _, serial in devices} == {"BML-000001", "SIM-000001", "SIM-000002"}
    env = {
        **os.environ,
        "DATABASE_URL": await in_thread(_database_url_of_test_db),
        "COFFEESHOP_DATA_DIR": str(tmp_path),
    }

    with asgi_server(django_db_blocker, tmp_path_factory, server="runserver") as server:
        logs = {name: open(tmp_path / f"{name}.log", "w+") for name in FLEETS}  # noqa: SIM115
        fleets = {name: _fleet(name, server.url, env, logs[name]) for name in FLEETS}
        try:
            deadline = time.monotonic() + DEADLINE_S
            while True:
                now = {name: await in_thread(_today, name) for name in FLEETS}
                if all(now[name]["orders"] >= seeded[name]["orders"] + GROWTH for name in FLEETS):
                    break
                assert all(fleet.poll() is None for fleet in fleets.values()), "a fleet ended early"
                assert time.monotonic() < deadline, f"sales today did not grow: {seeded} -> {now}"
                await asyncio.sleep(0.5)
        finally:
            for fleet in fleets.values():
                fleet.send_signal(signal.SIGINT)  # a clean stop prints the counters
            for fleet in fleets.values():
                fleet.wait(timeout=30)
        outputs = {}
        for name, log in logs.items():
            log.seek(0)
            outputs[name] = log.read()
            log.close()

    assert {name: figures["currency"] for name, figures in now.items()} == {
        "Demo Coffee Co": "CNY",
        "Bean Machine Ltd": "GBP",
    }
    for output in outputs.values():
        assert re.search(r"orders conflict: 0\b", output), output[-3000:]
        assert re.search(r"orders rejected: 0\b", output), output[-3000:]
        assert re.search(r"registered: [1-9]", output), output[-3000:]
    assert await in_thread(lambda: sorted(Device.objects.values_list("pk", "serial"))) == devices, (
        "the fleets took over the seeded machines"
    )
    reregistered = await in_thread(
        lambda: set(
            OperationLog.objects.filter(action="device.reregistered").values_list("device__serial", flat=True)
        )
    )
    assert reregistered == {serial for _, serial in devices}
    currencies = await in_thread(lambda: set(Order.objects.values_list("merchant__name", "currency")))
    assert currencies == {("Demo Coffee Co", "CNY"), ("Bean Machine Ltd", "GBP")}
