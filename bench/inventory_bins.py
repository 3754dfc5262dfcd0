"""Part 2 of bench/inventory.py: the fleet's bin page with --machines machines of 8 bins each, through the
API (`GET /api/v1/bins`) and the admin (`/admin/inventory/bin/`): the first page, a deep page and a
filtered page (low bins of one material), each as sequential requests beside the bare view of the same
run, and the database queries of each request.
"""

from __future__ import annotations

import re

from bench.heartbeat import HOST, BenchError, shell_json
from bench.inventory_import import ratio
from bench.orders import pg, step
from bench.runner import cpu_meter
from bench.staff import StaffClient, latency_ms

FLEET_MERCHANT = "Bench Fleet Co"
FLEET_EMAIL = "ops-fleet@bench.example.com"
BINS_PER_MACHINE = 8
PAGE_SIZE = 50  # the API's default page and the admin's list_per_page
CHANGELIST = "/admin/inventory/bin/"
FILTER_MATERIAL = "MILK-POWDER"
# The fleet's materials: (code, name, kind, unit, capacity, default low threshold %). A machine's 8 bins
# hold 8 of these 12, each machine its own 8, so one material is in two machines of three.
MATERIALS = (
    ("BEAN-ARABICA", "阿拉比卡咖啡豆", "bean", "g", 1000, 15),
    ("BEAN-DECAF", "低因咖啡豆", "bean", "g", 1000, 15),
    ("MILK-POWDER", "全脂奶粉", "powder", "g", 800, 20),
    ("OAT-POWDER", "燕麦奶粉", "powder", "g", 800, 20),
    ("SUGAR", "白砂糖", "powder", "g", 500, 10),
    ("CHOCOLATE", "可可粉", "powder", "g", 500, 15),
    ("MATCHA", "抹茶粉", "powder", "g", 300, 15),
    ("VANILLA-SYRUP", "香草糖浆", "syrup", "ml", 750, 25),
    ("CARAMEL-SYRUP", "焦糖糖浆", "syrup", "ml", 750, 25),
    ("WATER", "纯净水", "water", "ml", 5000, 10),
    ("CUP-12OZ", "纸杯 12 oz", "cup", "pcs", 200, 15),
    ("LID-90MM", "杯盖 90 mm", "cup", "pcs", 200, 15),
)
CITIES = ("上海", "北京", "深圳", "广州", "杭州", "成都", "南京", "武汉", "西安", "苏州")

# Straight into the tables with bulk_create, as the models have them: one merchant, its catalogue,
# 100 locations, the machines, 8 bins each with their forecast (as inventory.services.forecast leaves
# it), and an Ops user. Levels spread over 0-100 % (1 bin in 40 empty), paces over 2-20 % a day.
SEED_FLEET = """
import json
from datetime import timedelta
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from devices.models import Device, DeviceBin, Location
from devices.rules import bin_is_empty, bin_is_low
from inventory.models import Material
from inventory.services.forecast import empty_at

materials = {materials!r}
cities = {cities!r}
merchant = Merchant.objects.create(name={merchant!r})
Material.objects.bulk_create([
    Material(merchant=merchant, code=code, name=name, kind=kind, unit=unit, low_threshold_pct=threshold)
    for code, name, kind, unit, capacity, threshold in materials])
locations = Location.objects.bulk_create([
    Location(merchant=merchant, name=f"{{cities[i % len(cities)]}} {{i // len(cities) + 1}} 号店",
             city=cities[i % len(cities)]) for i in range(100)])
now = timezone.now()
devices = Device.objects.bulk_create([
    Device(merchant=merchant, location=locations[i % len(locations)], serial=f"BINS-{{i:06d}}",
           model="CM-2000", firmware="1.4.2", alias=f"Fleet {{i}}" if i % 3 else "", state="idle",
           is_online=True, last_seen_at=now - timedelta(seconds=i % 30), status_changed_at=now)
    for i in range(1, {machines} + 1)], batch_size=2000)
bins, expected = [], {{"total": 0, "low_of_material": 0}}
for m, device in enumerate(devices):
    for b in range({per_machine}):
        code, _, _, unit, capacity, threshold = materials[(m + b) % len(materials)]
        k = (m * 31 + b * 17) % 400
        level = 0.0 if k < 10 else round((k * 7919 % 1000) / 10, 1)
        reported = now - timedelta(seconds=(m * 7 + b) % 600)
        pace = capacity * (2 + (m + 3 * b) % 19) / 100
        bin_ = DeviceBin(
            device=device, index=b + 1, material_code=code, unit=unit, capacity=capacity,
            remaining=capacity * level / 100, level_pct=level, low_threshold_pct=threshold,
            threshold_follows_material=True, reported_at=reported,
            last_refilled_at=now - timedelta(days=1 + (m + b) % 9),
            drain_since_at=now - timedelta(days=1 + (m + b) % 9), drain_since_remaining=capacity,
            drain_per_day=pace, forecast_at=reported, forecast_remaining=capacity * level / 100)
        bin_.empty_at = empty_at(bin_)
        bins.append(bin_)
        expected["total"] += 1
        if code == {filter_material!r} and bin_is_low(level, threshold) and not bin_is_empty(bin_.remaining):
            expected["low_of_material"] += 1
DeviceBin.objects.bulk_create(bins, batch_size=5000)
with connection.cursor() as cursor:  # what autovacuum would have done by the time anyone looks
    cursor.execute("ANALYZE devices_device")
    cursor.execute("ANALYZE devices_devicebin")
user = User.objects.create_user({email!r}, password={password!r}, name="fleet", role=Role.OPS)
grant_merchant_access(user, merchant)
print("BENCH_JSON " + json.dumps({{"merchant_id": merchant.pk, "token": Token.objects.create(user=user).key,
                                 "expected": expected}}))
"""

# Each request once more in a Django shell (the test client, production settings), its queries counted.
QUERY_COUNTS = """
import json
from django.test import Client
from accounts.models import User
from bench.staff import counting_queries

api = Client(HTTP_HOST={host!r}, headers={{"X-Forwarded-Proto": "https", "Authorization": "Token {token}"}})
admin = Client(HTTP_HOST={host!r}, headers={{"X-Forwarded-Proto": "https"}})
admin.force_login(User.objects.get(email={email!r}))
counts = {{}}
for name, who, path in {cases!r}:
    client = api if who == "api" else admin
    client.get(path)  # the first of a kind loads what a warm worker holds
    tries = []
    for _ in range(3):
        with counting_queries() as counter:
            reply = client.get(path)
        assert reply.status_code == 200, (name, reply.status_code, reply.content[:300])
        tries.append((counter["seconds"], counter["queries"], counter["slowest"]))
    seconds, queries, (slowest_s, slowest_sql) = sorted(tries)[1]
    counts[name] = [queries, round(seconds * 1000, 1), round(slowest_s * 1000, 1), slowest_sql]
print("BENCH_JSON " + json.dumps(counts))
"""

ADMIN_ROW = re.compile(r'<input type="checkbox" name="_selected_action"')


def seed_fleet(env, *, machines: int, password: str) -> dict:
    step(f"seeding {machines:,} machines × {BINS_PER_MACHINE} bins (bulk_create) and an Ops user")
    return shell_json(
        env,
        SEED_FLEET.format(
            materials=MATERIALS,
            cities=CITIES,
            merchant=FLEET_MERCHANT,
            machines=machines,
            per_machine=BINS_PER_MACHINE,
            filter_material=FILTER_MATERIAL,
            email=FLEET_EMAIL,
            password=password,
        ),
    )


def cases(total_bins: int) -> list[tuple[str, str, str, int, bool]]:
    """(name, api|admin, path, page, filtered): page 1, the middle page, the low bins of one material."""
    pages = -(-total_bins // PAGE_SIZE)
    deep = max(1, pages // 2)
    middle = f"middle page ({deep:,} of {pages:,})"
    filtered = f"state=low&material={FILTER_MATERIAL}"
    return [
        ("API page 1", "api", "/api/v1/bins", 1, False),
        (f"API {middle}", "api", f"/api/v1/bins?page={deep}", deep, False),
        (f"API {filtered}", "api", f"/api/v1/bins?{filtered}", 1, True),
        ("admin page 1", "admin", CHANGELIST, 1, False),
        (f"admin {middle}", "admin", f"{CHANGELIST}?p={deep}", deep, False),
        (f"admin {filtered}", "admin", f"{CHANGELIST}?{filtered}", 1, True),
    ]


def checked(reply, case: tuple, expected: dict) -> None:
    """The reply is the page it says: every bin of its page (the API's count too), the filter applied,
    most urgent first (the API's states); raises BenchError otherwise."""
    name, who, _, page, filtered = case
    if reply.status_code != 200:
        raise BenchError(f"{name}: HTTP {reply.status_code} {reply.text[:300]}")
    matching = expected["low_of_material"] if filtered else expected["total"]
    want_rows = max(0, min(PAGE_SIZE, matching - (page - 1) * PAGE_SIZE))
    if who == "admin":
        rows = len(ADMIN_ROW.findall(reply.text))
        if rows != want_rows:
            raise BenchError(f"{name}: {rows} bins on the page, expected {want_rows}")
        return
    data = reply.json()["data"]
    results = data["results"]
    if data["count"] != matching or len(results) != want_rows:
        raise BenchError(
            f"{name}: count {data['count']}, {len(results)} bins (expected {matching}, {want_rows})"
        )
    if filtered and any((r["state"], r["material"]) != ("low", FILTER_MATERIAL) for r in results):
        raise BenchError(f"{name}: a bin that is not low {FILTER_MATERIAL} in the filtered page")
    rank = {"empty": 0, "low": 1, "ok": 2}
    states = [rank[r["state"]] for r in results]
    if states != sorted(states):
        raise BenchError(f"{name}: the page is not in urgency order: {[r['state'] for r in results]}")


def measure_bins(*, port, server_pid, env, db_name, fleet: dict, password: str, args) -> dict:
    """Part 2 on the server at `port`, the fleet seeded: each case's latency, cores and queries. A reply
    that is not the page it should be is a problem of the run, and its case's timing stops there."""
    api = StaffClient(port, token=fleet["token"])
    admin = StaffClient(port)
    admin.login(FLEET_EMAIL, password)
    results, problems = [], []
    try:
        for case in cases(fleet["expected"]["total"]):
            name, who, path, _, _ = case
            client = api if who == "api" else admin

            def send(client=client, case=case):
                checked(client.get(case[2]), case, fleet["expected"])

            try:
                for _ in range(2):  # warm: this case's plan, and each worker's first of its kind
                    send()
                cores = cpu_meter(server_pid)
                timing = latency_ms(send, requests=args.page_requests, max_s=args.page_seconds, warmup=0)
            except BenchError as exc:
                problems.append(str(exc))
                continue
            timing["cpu"] = cores(timing["requests"])
            results.append({"name": name, "path": path, **timing})
            step(
                f"{name}: p50 {timing['p50_ms']:.1f} ms, p95 {timing['p95_ms']:.1f} ms ({timing['requests']})"
            )
    finally:
        api.close()
        admin.close()
    step("counting the queries of each request (Django shell)")
    queries = shell_json(
        env,
        QUERY_COUNTS.format(
            host=HOST,
            token=fleet["token"],
            email=FLEET_EMAIL,
            cases=[case[:3] for case in cases(fleet["expected"]["total"])],
        ),
    )
    for result in results:
        counted = queries.get(result["name"], (None, None, None, ""))
        result["queries"], result["queries_ms"], result["slowest_query_ms"], result["slowest_query"] = counted
    return {
        "cases": results,
        "expected": fleet["expected"],
        "table_sizes": table_sizes(db_name),
        "problems": problems,
    }


def table_sizes(db_name: str) -> dict:
    with pg(db_name) as conn:
        return dict(
            conn.execute(
                "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class"
                " WHERE relname IN ('devices_device', 'devices_devicebin')"
            ).fetchall()
        )


def query_kind(sql: str) -> str:
    if sql.startswith("SELECT COUNT("):
        return "the count"
    if "ORDER BY" in sql and "LIMIT" in sql:
        return f"the page: `{sql[sql.find('ORDER BY') :][:200]}`"
    return f"`{sql[:100]}…`"


def bins_table(report: dict) -> str:
    """Part 2's cases as a Markdown table, each beside the bare view of the same run."""
    bare = report["ceiling"]["p50_ms"]
    lines = [
        f"| bin page, {report['config']['machines']:,} machines × {BINS_PER_MACHINE} bins | p50 | p95 "
        "| p50 ÷ bare view | queries (their time, in the shell) | requests | gunicorn CPU per request "
        "| other cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in report["bins"]["cases"]:
        queries = "" if case["queries"] is None else f"{case['queries']} ({case['queries_ms']:.1f} ms)"
        cpu = case["cpu"]
        lines.append(
            f"| {case['name']} | {case['p50_ms']:.1f} ms | {case['p95_ms']:.1f} ms "
            f"| {ratio(case['p50_ms'] / bare)} | {queries} | {case['requests']} "
            f"| {cpu['gunicorn_cpu_ms_per_request']:.1f} ms | {cpu['other_cores']:.2f} |"
        )
    lines.append("")
    for case in report["bins"]["cases"]:
        if case.get("slowest_query"):
            lines.append(
                f"- {case['name']}: the slowest query, {case['slowest_query_ms']:.1f} ms, is "
                f"{query_kind(case['slowest_query'])} (its SQL is in the JSON)"
            )
    return "\n".join(lines)
