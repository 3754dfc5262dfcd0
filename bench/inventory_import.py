"""Part 1 of bench/inventory.py: a spreadsheet of materials imported through the API and through the
admin (preview, confirm, the same file again), each request timed; the same requests' database queries
counted on a small sheet; both catalogues checked against the sheet.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench.heartbeat import HOST, shell_json
from bench.orders import pg, step
from bench.runner import cpu_meter
from bench.staff import StaffClient, read_form

IMPORT_URL = "/admin/inventory/material/import/"
IMPORTED = re.compile(r"Import finished: (\d+) new, (\d+) updated, (\d+) deleted and (\d+) skipped")
PREVIEW_ROW = re.compile(r'<tr class="(new|update|skip|delete|error) ')
ADMIN_STATUS = {"new": "new", "update": "updated", "skip": "unchanged"}
# The second import of the same file, whose start no material may be saved after.
AGAIN = {"api": "API confirm again, same file", "admin": "admin confirm, same file again"}

# --- The sheet ------------------------------------------------------------------------------------

# A chain's catalogue, by kind: "kind unit density code-prefix", then Chinese names, English names and
# suppliers, each list split at "|" (a supplier left blank is a blank cell).
KINDS = tuple(
    (*spec.split(), *(names.split("|") for names in lists))
    for spec, *lists in (
        (
            "bean g - BEAN",
            "阿拉比卡咖啡豆|云南小粒咖啡豆|耶加雪菲",
            "Arabica|Espresso blend, dark",
            "云南咖啡|Lavazza|",
        ),
        (
            "powder g - PWD",
            "全脂奶粉|可可粉|抹茶粉",
            'Cocoa "Dutch" powder|Milk powder',
            "伊利|雀巢专业餐饮|",
        ),
        ("milk ml 1.030 MILK", "鲜牛奶|燕麦奶", "Oat milk, barista|Fresh milk", "光明乳业|OATLY"),
        ("syrup ml 1.320 SYR", "香草糖浆|焦糖糖浆|榛果糖浆", "Vanilla syrup|Caramel syrup", "Monin|Torani|"),
        ("water ml 1.000 WATER", "纯净水|矿泉水", "Filtered water", "农夫山泉|"),
        ("cup pcs - CUP", "纸杯 12 oz|杯盖 90 mm", "Paper cup 8 oz", "恒安纸业|Huhtamaki"),
        ("supplies pcs - SUP", "搅拌棒|吸管", "Stirrer, wooden|Napkin", "得力|"),
    )
)
COLUMNS = ["code", "name", "kind", "unit", "density", "low_threshold_pct", "cost_per_unit", "supplier"]
ENABLED_AS = ("1", "true", "yes", "", "TRUE", "y")
DISABLED_AS = ("0", "false", "no")


def catalogue(rows: int) -> list[dict]:
    """The materials the sheet holds, as the catalogue must hold them after the import."""
    materials = []
    for i in range(1, rows + 1):
        kind, unit, density, prefix, chinese, english, suppliers = KINDS[i % len(KINDS)]
        names = chinese if i % 5 < 3 else english
        materials.append(
            {
                "code": f"{prefix}-{i:05d}",
                "name": f"{names[i % len(names)]} #{i}",
                "kind": kind,
                "unit": unit,
                "density": None if density == "-" else Decimal(density),
                "low_threshold_pct": 15 if i % 8 == 0 else 5 + i % 36,  # a blank cell is the default 15
                "cost_per_unit": None if i % 17 == 0 else Decimal(i * 37 % 10000) / 10000,
                "supplier": suppliers[i % len(suppliers)],
                "is_enabled": i % 10 != 0,
            }
        )
    return materials


def sheet(materials: list[dict], merchant: str) -> bytes:
    """The materials as a manager's Excel saves a CSV: BOM, CRLF, people's spelling of the same values."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*COLUMNS, "enabled", "merchant"])
    for i, m in enumerate(materials, 1):
        kind = m["kind"].title() if i % 5 == 0 else f" {m['kind'].upper()} " if i % 13 == 0 else m["kind"]
        density = (
            ""
            if m["density"] is None
            else f"{m['density']:.3f}".rstrip("0").rstrip(".")
            if i % 3 == 0
            else f"{m['density']:.3f}"
        )
        enabled = ENABLED_AS[i % len(ENABLED_AS)] if m["is_enabled"] else DISABLED_AS[i % len(DISABLED_AS)]
        writer.writerow(
            [
                m["code"],
                f"  {m['name']} " if i % 11 == 0 else m["name"],
                kind,
                m["unit"].upper() if i % 4 == 0 else m["unit"],
                density,
                "" if i % 8 == 0 else str(m["low_threshold_pct"]),
                "" if m["cost_per_unit"] is None else f"{m['cost_per_unit']:.4f}",
                m["supplier"],
                enabled,
                "" if i % 4 == 0 else merchant,
            ]
        )
    return ("\ufeff" + out.getvalue()).encode()


# --- Phases ---------------------------------------------------------------------------------------


class Run:
    """The phases of one run against one gunicorn, each timed, with who used the cores meanwhile."""

    def __init__(self, server_pid: int, log_path: Path, timeout_s: int):
        self.server_pid, self.log_path, self.timeout_s = server_pid, log_path, timeout_s
        self.phases: list[dict] = []

    def worker_timeouts(self) -> int:
        return self.log_path.read_text(errors="replace").count("WORKER TIMEOUT")

    def phase(self, name: str, send, *, rows: int = 0) -> tuple[dict, object]:
        """Time `send()` (one request); a reply that never came is recorded, not raised."""
        import httpx

        timeouts_before = self.worker_timeouts()
        started_at = datetime.now(UTC).isoformat()
        cores = cpu_meter(self.server_pid)
        started = time.perf_counter()
        reply, outcome = None, "ok"
        try:
            reply = send()
        except httpx.TransportError as exc:
            outcome = f"no reply: {exc!r}"
        seconds = time.perf_counter() - started
        if reply is None or reply.status_code >= 500:
            time.sleep(0.5)  # the arbiter's log line of a kill can trail the reply
        if self.worker_timeouts() > timeouts_before:  # the worker answers 500 as it is killed
            outcome = f"killed by gunicorn's worker timeout ({self.timeout_s} s)"
        cpu = cores(1)
        cpu.pop("gunicorn_cpu_ms_per_request")  # one request: gunicorn's cores say it
        record = {
            "name": name,
            "started_at": started_at,
            "rows": rows,
            "seconds": round(seconds, 3),
            "status": getattr(reply, "status_code", None),
            "bytes": len(reply.content) if reply is not None else 0,
            "outcome": outcome,
            "counts": {},
            "cpu": cpu,
        }
        self.phases.append(record)
        return record, reply


def describe(phase: dict) -> str:
    counts = ", ".join(f"{n:,} {status}" for status, n in phase["counts"].items())
    reply = f"HTTP {phase['status']}" if phase["status"] else phase["outcome"]
    if phase["status"] and phase["outcome"] != "ok":
        reply += f" ({phase['outcome']})"
    return f"{reply} in {phase['seconds']:.2f} s" + (f"; {counts}" if counts else "")


def judged(phase: dict, ok: bool, why: str) -> bool:
    """The phase's verdict (`why` when the reply came but is wrong), printed; whether it is ok."""
    if phase["outcome"] == "ok" and not ok:
        phase["outcome"] = why
    step(f"{phase['name']}: {describe(phase)}")
    return phase["outcome"] == "ok"


def import_through_api(run: Run, port: int, token: str, content: bytes, rows: int, timeout_s: float) -> None:
    client = StaffClient(port, token=token, timeout_s=timeout_s)
    try:
        plan = (
            ("API preview (dry_run=true)", {"dry_run": "true"}, "new"),
            ("API confirm", {}, "new"),
            ("API confirm again, same file", {}, "unchanged"),
        )
        for name, fields, every_row in plan:
            record, reply = run.phase(
                name,
                lambda fields=fields: client.post(
                    "/api/v1/materials/import",
                    data=fields,
                    files={"file": ("materials.csv", content, "text/csv")},
                ),
                rows=rows,
            )
            body = (
                reply.json() if reply is not None and "json" in reply.headers.get("content-type", "") else {}
            )
            if reply is not None and reply.status_code == 200:
                record["counts"] = dict(Counter(row["status"] for row in body["data"]))
            elif reply is not None:
                record["error"] = str(body.get("error", reply.text))[:500]
            done = judged(
                record, record["counts"] == {every_row: rows}, f"expected {rows:,} rows {every_row}"
            )
            if not done and name == "API confirm":  # a second import is a re-import only after a first
                run.phases.append(
                    {"name": plan[2][0], "outcome": "not run: the confirm failed", "skipped": True}
                )
                return
    finally:
        client.close()


def import_through_admin(
    run: Run, port: int, email: str, password: str, content: bytes, rows: int, timeout_s: float
) -> None:
    """A browser's way through the admin import: page, upload, preview, confirm, the list it lands on."""
    client = StaffClient(port, timeout_s=timeout_s)
    try:
        record, _ = run.phase("admin log-in (form, POST, redirect)", lambda: client.login(email, password))
        judged(record, True, "")
        for again in (False, True):
            suffix = ", same file again" if again else ""
            record, page = run.phase(f"admin import page{suffix}", lambda: client.get(IMPORT_URL))
            if not judged(record, page is not None and page.status_code == 200, "no import page"):
                return
            form = read_form(page.text, "import_file")
            form.choose("format", "csv")
            record, preview = run.phase(
                f"admin upload → preview page{suffix}",
                lambda form=form: client.post(
                    form.action or IMPORT_URL,
                    data=form.fields,
                    files={form.files[0]: ("materials.csv", content, "text/csv")},
                ),
                rows=rows,
            )
            if preview is not None and preview.status_code == 200:
                shown = Counter(PREVIEW_ROW.findall(preview.text))
                record["counts"] = {ADMIN_STATUS.get(k, k): n for k, n in shown.items()}
            every_row = {"unchanged" if again else "new": rows}
            if not judged(record, record["counts"] == every_row, f"expected the preview to show {every_row}"):
                return
            confirm = read_form(preview.text, "import_file_name")
            confirmed, done = run.phase(
                f"admin confirm{suffix}",
                lambda confirm=confirm: client.post(confirm.action, data=confirm.fields),
                rows=rows,
            )
            if done is None or done.status_code != 302:
                judged(confirmed, False, "no redirect to the list")
                return
            record, listing = run.phase(
                f"admin list after the import{suffix}", lambda done=done: client.get(done.headers["location"])
            )
            found = IMPORTED.search(listing.text if listing is not None else "")
            if found:  # the message the confirmation left for the list: what it wrote
                new, updated, _, skipped = (int(n) for n in found.groups())
                said = {"new": new, "updated": updated, "unchanged": skipped}
                confirmed["counts"] = {status: n for status, n in said.items() if n}
            judged(confirmed, confirmed["counts"] == every_row, f"expected the list to say {every_row}")
            judged(record, found is not None, "no import message on the list")
    finally:
        client.close()


# --- Queries and the database ---------------------------------------------------------------------

# The same requests on a small sheet, through Django's test client on the production settings, each
# with a counter on the database connection (the server itself is not touched).
QUERY_COUNTS = """
import json
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from accounts.models import User
from bench.staff import counting_queries, read_form

sheets = {{who: open(path, "rb").read() for who, path in {paths!r}.items()}}
counts = {{}}

def counted(name, send, status):
    with counting_queries() as counter:
        reply = send()
    assert reply.status_code == status, (name, reply.status_code, reply.content[:500])
    counts[name] = counter["queries"]
    return reply

def upload(who):
    return SimpleUploadedFile("materials.csv", sheets[who], "text/csv")

api = Client(HTTP_HOST={host!r}, headers={{"X-Forwarded-Proto": "https", "Authorization": "Token {token}"}})
for name, fields in (("API preview (dry_run=true)", {{"dry_run": "true"}}), ("API confirm", {{}}),
                     ("API confirm again, same file", {{}})):
    counted(name, lambda: api.post("/api/v1/materials/import", {{**fields, "file": upload("api")}}), 200)
admin = Client(HTTP_HOST={host!r}, headers={{"X-Forwarded-Proto": "https"}})
admin.force_login(User.objects.get(email={email!r}))
for suffix in ("", ", same file again"):
    form = read_form(admin.get({import_url!r}).content.decode(), "import_file")
    form.choose("format", "csv")
    fields = {{**form.fields, form.files[0]: upload("admin")}}
    preview = counted("admin upload → preview page" + suffix,
                      lambda: admin.post(form.action or {import_url!r}, fields), 200)
    confirm = read_form(preview.content.decode(), "import_file_name")
    counted("admin confirm" + suffix, lambda: admin.post(confirm.action, confirm.fields), 302)
print("BENCH_JSON " + json.dumps(counts))
"""

MATERIAL_COLUMNS = [*COLUMNS, "is_enabled"]


def check_catalogue(
    db_name: str, merchant_id: int, materials: list[dict], untouched_since: str | None
) -> dict:
    """What the merchant's catalogue holds against the sheet: every material once and as written, and
    (after the second import) none saved since `untouched_since`."""
    with pg(db_name) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(MATERIAL_COLUMNS)}, updated_at FROM inventory_material"
            " WHERE merchant_id = %s",
            (merchant_id,),
        ).fetchall()
    stored = {row[0]: row for row in rows}
    wanted = {m["code"]: tuple(m[c] for c in MATERIAL_COLUMNS) for m in materials}
    differing = [code for code, want in wanted.items() if code in stored and stored[code][:-1] != want]
    check = {
        "materials": len(rows),
        "missing": len(set(wanted) - set(stored)),
        "not_in_the_sheet": len(set(stored) - set(wanted)),
        "differing": len(differing),
        "first_differing": [
            {"sheet": [str(v) for v in wanted[c]], "stored": [str(v) for v in stored[c][:-1]]}
            for c in differing[:3]
        ],
    }
    if untouched_since and rows:
        since = datetime.fromisoformat(untouched_since)
        check["saved_by_the_second_import"] = sum(1 for row in rows if row[-1] >= since)
    return check


def measure_import(
    *, port, server_pid, log_path, env, db_name, seed, people, password, args, workdir
) -> dict:
    """Part 1, on the server at `port`: `people` are (key, merchant, e-mail) as seeded, `seed[key]` their
    merchant id and token; returns the phases, the query counts, the database check and the problems."""
    materials = catalogue(args.rows)
    sheets = {key: sheet(materials, merchant) for key, merchant, _ in people[:2]}
    step(
        f"the sheet: {args.rows:,} materials, {len(sheets['api']) / 1024:,.0f} KiB of CSV (UTF-8, BOM, CRLF)"
    )
    run = Run(server_pid, log_path, args.worker_timeout)
    client_timeout = args.worker_timeout + 60
    import_through_api(run, port, seed["api"]["token"], sheets["api"], args.rows, client_timeout)
    import_through_admin(run, port, people[1][2], password, sheets["admin"], args.rows, client_timeout)

    query_counts = {}
    if args.sample_rows:
        step(f"counting the queries of the same requests on a {args.sample_rows}-row sheet (Django shell)")
        paths = {}
        for who, (_, merchant, _) in (("api", people[2]), ("admin", people[3])):
            paths[who] = str(workdir / f"sample-{who}.csv")
            Path(paths[who]).write_bytes(sheet(catalogue(args.sample_rows), merchant))
        query_counts = shell_json(
            env,
            QUERY_COUNTS.format(
                paths=paths,
                host=HOST,
                token=seed["sample_api"]["token"],
                email=people[3][2],
                import_url=IMPORT_URL,
            ),
        )

    step("checking both catalogues in the database")
    second = {p["name"]: p.get("started_at") for p in run.phases}
    check = {
        "api": check_catalogue(db_name, seed["api"]["merchant_id"], materials, second.get(AGAIN["api"])),
        "admin": check_catalogue(
            db_name, seed["admin"]["merchant_id"], materials, second.get(AGAIN["admin"])
        ),
    }
    problems = [f"{p['name']}: {p['outcome']}" for p in run.phases if p["outcome"] != "ok"]
    for who, found in check.items():
        if (found["materials"], found["missing"], found["differing"]) != (args.rows, 0, 0):
            problems.append(f"database, {who} catalogue: {json.dumps(found, ensure_ascii=False)[:600]}")
        if found.get("saved_by_the_second_import"):
            problems.append(f"database, {who}: the second import saved {found['saved_by_the_second_import']}")
    return {
        "sheet_bytes": len(sheets["api"]),
        "phases": run.phases,
        "query_counts": query_counts,
        "database_check": check,
        "problems": problems,
    }


def ratio(value: float) -> str:
    return f"{value:,.0f}×" if value >= 100 else f"{value:,.1f}×"


def catalogue_line(found: dict) -> str:
    line = f"{found['materials']:,} materials, {found['missing']} missing, {found['differing']} differing"
    if "saved_by_the_second_import" in found:
        line += f", {found['saved_by_the_second_import']} saved by the second import"
    return line


def size(n: int) -> str:
    return "" if not n else f"{n / 1024:,.0f} KiB" if n < 2**20 else f"{n / 2**20:,.1f} MiB"


def import_table(report: dict) -> str:
    """Part 1's phases as a Markdown table, each beside the bare view of the same run."""
    bare = report["ceiling"]["p50_ms"]
    sample = report["config"]["sample_rows"]
    queries = report["import"]["query_counts"]
    lines = [
        "| phase | reply | seconds | rows/s | ÷ bare view | per row ÷ bare view | rows "
        f"| queries per row ({sample}-row sample) | reply size | gunicorn cores | other cores |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        f"| bare view `GET /bench/ceiling` (p50 of {report['ceiling']['requests']}) | 200 "
        f"| {bare / 1000:.4f} | | 1× | | | | | | |",
    ]
    for phase in report["import"]["phases"]:
        if phase.get("skipped"):
            lines.append(f"| {phase['name']} | {phase['outcome']} | | | | | | | | | |")
            continue
        reply = str(phase["status"] or "–") + ("" if phase["outcome"] == "ok" else f": {phase['outcome']}")
        rows, seconds = phase["rows"], phase["seconds"]
        rate = f"{rows / seconds:,.0f}" if rows and phase["outcome"] == "ok" else ""
        per_row = ratio(seconds * 1000 / rows / bare) if rows and phase["outcome"] == "ok" else ""
        counts = ", ".join(f"{n:,} {status}" for status, n in phase["counts"].items())
        per_query = f"{queries[phase['name']] / sample:.1f}" if phase["name"] in queries and sample else ""
        lines.append(
            f"| {phase['name']} | {reply} | {seconds:.2f} | {rate} | {ratio(seconds * 1000 / bare)} "
            f"| {per_row} | {counts} | {per_query} | {size(phase['bytes'])} "
            f"| {phase['cpu']['gunicorn_cores']:.2f} | {phase['cpu']['other_cores']:.2f} |"
        )
    return "\n".join(lines)
