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
IMPORTED = re.compile(r"Import finished: (\d+) new, (\d+) updated, (\d+) unchanged")
API_PREVIEW = "API preview (dry_run=true): upload → job done"
API_CONFIRM = "API confirm → import job done"
ADMIN_UPLOAD = "admin upload → preview page, job done"
ADMIN_CONFIRM_PHASE = "admin confirm → import done"

# The second import of the same file, whose start no material may be saved after.
AGAIN = {
    "api": "API import again, same file (dry_run=false) → job done",
    "admin": ADMIN_CONFIRM_PHASE + ", same file again",
}

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

    def __init__(self, server_pid: int, log_path: Path, timeout_s: int, worker_pid: int):
        self.server_pid, self.log_path, self.timeout_s = server_pid, log_path, timeout_s
        self.worker_pid = worker_pid
        self.phases: list[dict] = []

    def worker_timeouts(self) -> int:
        return self.log_path.read_text(errors="replace").count("WORKER TIMEOUT")

    def phase(self, name: str, send, *, rows: int = 0) -> tuple[dict, object]:
        """Time `send()` (one request); a reply that never came is recorded, not raised."""
        import httpx

        timeouts_before = self.worker_timeouts()
        started_at = datetime.now(UTC).isoformat()
        cores = cpu_meter(self.server_pid, jobs_pids=(self.worker_pid,))
        started = time.perf_counter()
        reply, outcome = None, "ok"
        try:
            reply = send()
        except httpx.TransportError as exc:
            outcome = f"no reply: {exc!r}"
        seconds = time.perf_counter() - started
        status = getattr(reply, "status_code", None)
        if reply is None or (status or 0) >= 500:
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
            "status": status,
            "bytes": len(getattr(reply, "content", b"")),
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


JOB_POLL_S = 0.25
JOB_URL = "/api/v1/materials/import-jobs/{id}"
FINISHED = ("succeeded", "failed", "canceled")
ADMIN_STATUS_URL = re.compile(r'data-status-url="([^"]+)"')
ADMIN_COUNT = re.compile(r'data-status="(new|updated|unchanged|error)"><b>(\d+)</b>')
ADMIN_CONFIRM = re.compile(
    r'<form method="post" action="(/admin/inventory/material/import-jobs/\d+/confirm/)"'
)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def data_of(reply) -> dict:
    if reply is None or "json" not in reply.headers.get("content-type", ""):
        return {}
    body = reply.json()
    return body.get("data", body) if isinstance(body, dict) else {}


def wait_for(poll, deadline_s: float) -> dict:
    """Poll `poll()` (a job's state as a dict with `status`) until the job has finished."""
    deadline = time.monotonic() + deadline_s
    while True:
        state = poll()
        if state.get("status") in FINISHED or time.monotonic() > deadline:
            return state
        time.sleep(JOB_POLL_S)


def import_through_api(run: Run, port: int, token: str, content: bytes, rows: int, timeout_s: float) -> None:
    """A script's way: the upload answers 202 with a job; poll it, read its rows, confirm, poll."""
    client = StaffClient(port, token=token, timeout_s=timeout_s)

    def job_state(job_id: int) -> dict:
        reply = data_of(client.get(JOB_URL.format(id=job_id)))
        return {**reply.get("job", {}), "import": reply}

    def upload_and_wait(fields: dict) -> dict:
        started = time.perf_counter()
        reply = client.post(
            "/api/v1/materials/import", data=fields, files={"file": ("materials.csv", content, "text/csv")}
        )
        accepted = {"request_s": round(time.perf_counter() - started, 3), "status": reply.status_code}
        if reply.status_code != 202:
            return {**accepted, "error": reply.text[:500]}
        state = wait_for(lambda: job_state(data_of(reply)["id"]), timeout_s)
        return {**accepted, **state}

    def confirm_and_wait(confirm_url: str) -> dict:
        started = time.perf_counter()
        reply = client.post(confirm_url)
        accepted = {"request_s": round(time.perf_counter() - started, 3), "status": reply.status_code}
        if reply.status_code != 202:
            return {**accepted, "error": reply.text[:500]}
        state = wait_for(lambda: job_state(data_of(reply)["id"]), timeout_s)
        return {**accepted, **state}

    def read_rows(job_id: int) -> Counter:
        seen, page = Counter(), 1
        while page:
            body = data_of(
                client.get(f"{JOB_URL.format(id=job_id)}/rows", params={"page": page, "page_size": 200})
            )
            seen.update(row["status"] for row in body.get("results", []))
            page = body.get("page", 0) + 1 if body.get("next") else 0
        return seen

    try:
        record, job = timed_job(run, API_PREVIEW, upload_and_wait, {"dry_run": "true"}, rows)
        if not judged(record, counted(record, job) == {"new": rows}, f"expected {rows:,} rows new"):
            return
        preview = job["import"]
        record, seen = run.phase(
            "API preview rows, every page (200 a page)", lambda: read_rows(preview["id"]), rows=rows
        )
        record["counts"] = dict(seen or {})
        record["status"] = 200 if seen else None
        judged(record, record["counts"] == {"new": rows}, f"expected {rows:,} rows new")
        if not preview.get("confirm_url"):
            run.phases.append({"name": "API confirm", "outcome": "not run: no confirm_url", "skipped": True})
            return
        record, job = timed_job(run, API_CONFIRM, confirm_and_wait, preview["confirm_url"], rows)
        if not judged(record, counted(record, job) == {"new": rows}, f"expected {rows:,} rows new"):
            run.phases.append(
                {"name": AGAIN["api"], "outcome": "not run: the confirm failed", "skipped": True}
            )
            return
        record, job = timed_job(run, AGAIN["api"], upload_and_wait, {"dry_run": "false"}, rows)
        judged(record, counted(record, job) == {"unchanged": rows}, f"expected {rows:,} rows unchanged")
    finally:
        client.close()


def timed_job(run: Run, name: str, start_and_wait, argument, rows: int) -> tuple[dict, dict]:
    """One phase from the request that starts a job to the job's end, the request's own time kept."""
    record, job = run.phase(name, lambda: start_and_wait(argument), rows=rows)
    job = job or {}
    record["status"] = job.get("status") and (202 if job.get("request_s") is not None else None)
    record["request_s"] = job.get("request_s")
    record["job_status"] = job.get("status")
    if job.get("error"):
        record["error"] = str(job["error"])[:500]
    return record, job


def counted(record: dict, job: dict) -> dict:
    """The job's counts as the phase's, statuses with no row left out."""
    counts = (job.get("import") or {}).get("counts") or {}
    record["counts"] = {status: n for status, n in counts.items() if n}
    return record["counts"]


def import_through_admin(
    run: Run, port: int, email: str, password: str, content: bytes, rows: int, timeout_s: float
) -> None:
    """A browser's way through the admin import: the upload lands on the job's page, which follows the
    job and then shows the preview; its confirmation lands on the import job's page, which says when
    it is done; then the same file again."""
    client = StaffClient(port, timeout_s=timeout_s)

    def follow(reply) -> tuple[str, str]:
        """The job page a 302 leads to, once its job has finished: (its URL, its HTML)."""
        if reply is None or reply.status_code != 302:
            return "", ""
        url = reply.headers["location"]
        page = client.get(url)
        status_url = ADMIN_STATUS_URL.search(page.text)
        if status_url:
            wait_for(lambda: client.get(status_url.group(1).replace("&amp;", "&")).json(), timeout_s)
            page = client.get(url)
        return url, page.text

    def upload(form):
        reply = client.post(
            form.action or IMPORT_URL,
            data=form.fields,
            files={form.files[0]: ("materials.csv", content, "text/csv")},
        )
        return reply, *follow(reply)

    def confirm(html: str):
        action, token = ADMIN_CONFIRM.search(html), CSRF.search(html)
        if not (action and token):
            return None, "", ""
        reply = client.post(action.group(1), data={"csrfmiddlewaretoken": token.group(1)})
        return reply, *follow(reply)

    try:
        record, _ = run.phase("admin log-in (form, POST, redirect)", lambda: client.login(email, password))
        judged(record, True, "")
        for again in (False, True):
            suffix = ", same file again" if again else ""
            every_row = {"unchanged" if again else "new": rows}
            record, page = run.phase(f"admin import page{suffix}", lambda: client.get(IMPORT_URL))
            if not judged(record, page is not None and page.status_code == 200, "no import page"):
                return
            form = read_form(page.text, "import_file")
            form.choose("format", "csv")
            record, done = run.phase(ADMIN_UPLOAD + suffix, lambda form=form: upload(form), rows=rows)
            html = done[2] if done else ""
            record["status"] = done[0].status_code if done and done[0] is not None else None
            record["counts"] = {k: int(n) for k, n in ADMIN_COUNT.findall(html) if int(n)}
            if not judged(record, record["counts"] == every_row, f"expected the preview to show {every_row}"):
                return
            record, done = run.phase(ADMIN_CONFIRM_PHASE + suffix, lambda html=html: confirm(html), rows=rows)
            html = done[2] if done else ""
            record["status"] = done[0].status_code if done and done[0] is not None else None
            found = IMPORTED.search(html)
            if found:
                new, updated, unchanged = (int(n) for n in found.groups())
                said = {"new": new, "updated": updated, "unchanged": unchanged}
                record["counts"] = {status: n for status, n in said.items() if n}
            judged(record, record["counts"] == every_row, f"expected the import page to say {every_row}")
    finally:
        client.close()


# --- Queries and the database ---------------------------------------------------------------------

# The same requests on a small sheet, through Django's test client on the production settings, each
# with a counter on the database connection (the server itself is not touched).
QUERY_COUNTS = """
import json
import re
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
    counts[name] = counts.get(name, 0) + counter["queries"]
    return reply

def upload(who):
    return SimpleUploadedFile("materials.csv", sheets[who], "text/csv")

api = Client(HTTP_HOST={host!r}, headers={{"X-Forwarded-Proto": "https", "Authorization": "Token {token}"}})
# Below MATERIAL_IMPORT_SYNC_MAX_ROWS the same job code runs within the request, so each count is the
# job's queries as well as the request's.
plan = (({api_preview!r}, {{"dry_run": "true"}}), ({api_confirm!r}, {{}}), ({api_again!r}, {{}}))
for name, fields in plan:
    counted(name, lambda: api.post("/api/v1/materials/import", {{**fields, "file": upload("api")}}), 200)
admin = Client(HTTP_HOST={host!r}, headers={{"X-Forwarded-Proto": "https"}})
admin.force_login(User.objects.get(email={email!r}))
for suffix in ("", ", same file again"):
    form = read_form(admin.get({import_url!r}).content.decode(), "import_file")
    form.choose("format", "csv")
    fields = {{**form.fields, form.files[0]: upload("admin")}}
    name = {admin_upload!r} + suffix
    job_page = counted(name, lambda: admin.post(form.action or {import_url!r}, fields), 302)
    preview = counted(name, lambda: admin.get(job_page["location"]), 200)
    action = re.search({confirm_pattern!r}, preview.content.decode()).group(1)
    counted({admin_confirm!r} + suffix, lambda: admin.post(action), 302)
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
    *, port, server_pid, worker_pid, log_path, env, db_name, seed, people, password, args, workdir
) -> dict:
    """Part 1, on the server at `port`: `people` are (key, merchant, e-mail) as seeded, `seed[key]` their
    merchant id and token; returns the phases, the query counts, the database check and the problems."""
    materials = catalogue(args.rows)
    sheets = {key: sheet(materials, merchant) for key, merchant, _ in people[:2]}
    step(
        f"the sheet: {args.rows:,} materials, {len(sheets['api']) / 1024:,.0f} KiB of CSV (UTF-8, BOM, CRLF)"
    )
    run = Run(server_pid, log_path, args.worker_timeout, worker_pid)
    client_timeout = max(args.worker_timeout + 60, args.job_timeout)
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
                api_preview=API_PREVIEW,
                api_confirm=API_CONFIRM,
                api_again=AGAIN["api"],
                admin_upload=ADMIN_UPLOAD,
                admin_confirm=ADMIN_CONFIRM_PHASE,
                confirm_pattern=ADMIN_CONFIRM.pattern,
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
        "| phase | reply | seconds | of which the request | rows/s | ÷ bare view | per row ÷ bare view "
        f"| rows | queries per row ({sample}-row sample) | reply size | gunicorn cores | worker cores "
        "| other cores |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        f"| bare view `GET /bench/ceiling` (p50 of {report['ceiling']['requests']}) | 200 "
        f"| {bare / 1000:.4f} | | | 1× | | | | | | | |",
    ]
    for phase in report["import"]["phases"]:
        if phase.get("skipped"):
            lines.append(f"| {phase['name']} | {phase['outcome']} | | | | | | | | | | | |")
            continue
        reply = str(phase["status"] or "–") + ("" if phase["outcome"] == "ok" else f": {phase['outcome']}")
        rows, seconds = phase["rows"], phase["seconds"]
        rate = f"{rows / seconds:,.0f}" if rows and phase["outcome"] == "ok" else ""
        per_row = ratio(seconds * 1000 / rows / bare) if rows and phase["outcome"] == "ok" else ""
        counts = ", ".join(f"{n:,} {status}" for status, n in phase["counts"].items())
        per_query = f"{queries[phase['name']] / sample:.1f}" if phase["name"] in queries and sample else ""
        request_s = f"{phase['request_s']:.2f}" if phase.get("request_s") is not None else ""
        lines.append(
            f"| {phase['name']} | {reply} | {seconds:.2f} | {request_s} | {rate} "
            f"| {ratio(seconds * 1000 / bare)} "
            f"| {per_row} | {counts} | {per_query} | {size(phase['bytes'])} "
            f"| {phase['cpu']['gunicorn_cores']:.2f} | {phase['cpu'].get('celery_cores', 0):.2f} "
            f"| {phase['cpu']['other_cores']:.2f} |"
        )
    return "\n".join(lines)
