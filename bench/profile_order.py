"""Where a single order's CPU goes: N single orders through Django's test client, profiled on the CPU clock.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/coffeeshop_prof REDIS_URL=redis://127.0.0.1:6379/11 \\
      .venv/bin/python bench/profile_order.py [--orders 300]

Runs on the production settings (DJANGO_ENV=production, a throwaway SECRET_KEY, the machine throttle
lifted) against the database DATABASE_URL names, which it migrates and adds one merchant and machine to.
Prints the unprofiled wall and CPU time per order, then the profile by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)


def order_body() -> str:
    order_id = uuid.uuid4().hex[:12]
    return json.dumps(
        {
            "order_id": order_id,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "currency": "CNY",
            "total": "18.00",
            "payment": {"method": "wechat", "status": "paid", "transaction_id": f"wx-{order_id}"},
            "items": [{"product_id": "latte", "name": "Latte", "qty": 1, "unit_price": "18.00"}],
            "is_test": False,
        }
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    args = parser.parse_args(argv)
    if "DATABASE_URL" not in os.environ:
        parser.error("set DATABASE_URL (a PostgreSQL database this script may migrate and write to)")
    os.environ.update(
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="testserver",
        DB_CONN_MAX_AGE="60",
        THROTTLE_DEVICE="1000000/min",
        DJANGO_SETTINGS_MODULE="coffeeshop.settings",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from accounts.models import Merchant
    from devices.models import Device
    from devices.services import issue_token

    call_command("migrate", verbosity=0)
    merchant, _ = Merchant.objects.get_or_create(name="Profile Co")
    device, _ = Device.objects.get_or_create(
        serial="PROFILE-1", defaults={"merchant": merchant, "model": "X"}
    )
    client = Client(HTTP_AUTHORIZATION=f"Device {issue_token(device)}", HTTP_X_FORWARDED_PROTO="https")
    url = f"/api/v1/devices/{device.pk}/orders/create"

    def send(n: int) -> None:
        for _ in range(n):
            reply = client.post(url, order_body(), content_type="application/json")
            assert reply.status_code == 201, reply.content

    send(30)
    wall, cpu = time.perf_counter(), time.process_time()
    send(args.orders)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    per_order = 1000 / args.orders
    print(f"unprofiled: {wall * per_order:.2f} ms wall, {cpu * per_order:.2f} ms CPU per order")
    profile = cProfile.Profile(time.process_time)
    profile.runcall(send, args.orders)
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(60)
    stats.print_callees("ingest_orders")
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
