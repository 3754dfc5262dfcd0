"""How a bench script begins and ends: its result files, the processes it started stopped whatever
happens (an error, Ctrl-C, SIGTERM or SIGHUP), and the verdict it prints and exits with.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.heartbeat import (
    RESULTS_DIR,
    ROOT,
    VENV_BIN,
    BenchError,
    Children,
    Interrupted,
    _raise_interrupted,
    cpu_between,
    cpu_snapshot,
    free_port,
    manage,
    recreate_database,
    start_gunicorn,
)
from bench.orders import step


def run_files(benchmark: str) -> tuple[str, Path]:
    """This run's timestamp and the log beside its JSON: bench/results/<benchmark>-<timestamp>.log."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return stamp, RESULTS_DIR / f"{benchmark}-{stamp}.log"


def guarded(script: str, body: Callable[[Children], int], *, cleanup: tuple[Callable, ...] = ()) -> int:
    """`body(children)`'s exit code; a BenchError is a message and 1, an interruption 130. Every process
    started through `children` is stopped and each `cleanup` run (its errors ignored) in any case."""
    children = Children()
    old_handlers = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        if not (VENV_BIN / "gunicorn").exists():
            print(f"{VENV_BIN / 'gunicorn'} is missing: run `make install` first.", file=sys.stderr)
            return 2
        return body(children)
    except BenchError as exc:
        print(f"\n{script}: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print(f"\n{script}: interrupted; stopping what it started", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        for step in cleanup:
            with contextlib.suppress(Exception):
                step()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def verdict(out_path: Path, problems: list[str], *, noisy: list[str], noise_cores: float) -> int:
    """The closing lines (a shared-machine warning, where the results are, what failed) and the exit code."""
    if noisy:
        print(
            f"WARNING: other processes used more than {noise_cores} core during {', '.join(noisy)}: those "
            "figures are noisy; run again on an idle machine before quoting them"
        )
    print(f"results: {out_path.relative_to(ROOT)}")
    if problems:
        print("\nFAILED: the run cannot be trusted:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 1
    return 0


def cpu_meter(server_pid: int, jobs_pids: tuple[int, ...] = ()) -> Callable[[int], dict]:
    """Starts counting who uses the cores; the function it returns stops and says, for `requests`
    requests: `cpu_between`'s figures, with this process's own CPU (the bench's client) out of the
    other processes'."""
    before, own_before, started = cpu_snapshot(server_pid, jobs_pids), time.process_time(), time.monotonic()

    def stop(requests: int = 1) -> dict:
        cpu = cpu_between(before, cpu_snapshot(server_pid, jobs_pids), requests)
        own = (time.process_time() - own_before) / max(time.monotonic() - started, 1e-9)
        cpu["bench_client_cores"] = round(own, 2)
        cpu["other_cores"] = round(max(0.0, cpu["other_cores"] - own), 2)
        cpu.pop("wrk_cores", None)
        return cpu

    return stop


def around_the_bare_view(port: int, requests: int, measure: Callable[[], dict]) -> tuple[dict, dict]:
    """`measure()` between two timings of the bare view on the same server: (its result, the ceiling
    with both timings and their mean p50, the figure every ratio of the run is taken to)."""
    from bench.orders import step
    from bench.staff import StaffClient, ceiling_latency_ms

    probe = StaffClient(port)
    try:
        ceiling = {"before": ceiling_latency_ms(probe, requests=requests)}
        step(f"bare view: p50 {ceiling['before']['p50_ms']:.2f} ms")
        result = measure()
        ceiling["after"] = ceiling_latency_ms(probe, requests=requests)
        step(f"bare view after: p50 {ceiling['after']['p50_ms']:.2f} ms")
    finally:
        probe.close()
    ceiling.update(
        p50_ms=round((ceiling["before"]["p50_ms"] + ceiling["after"]["p50_ms"]) / 2, 3),
        requests=ceiling["before"]["requests"] + ceiling["after"]["requests"],
    )
    return result, ceiling


def report_and_verdict(report: dict, *, name: str, summary: str, table: str, noise_cores: float) -> int:
    """Writes bench/results/<name>-<timestamp>.json, prints the summary line and the table, and returns
    the verdict's exit status (report["problems"], report["shared_machine_phases"])."""
    import json

    out_path = RESULTS_DIR / f"{name}-{report['timestamp']}.json"
    out_path.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    print()
    print(summary)
    print()
    print(table)
    noisy = report["shared_machine_phases"]
    return verdict(out_path, report["problems"], noisy=noisy, noise_cores=noise_cores)


def timed_fresh_database(env: dict, database: str, load: Callable[[], dict]) -> dict:
    """Drop and re-create `database` (that one only), migrate it, then `load()` it: what it returned,
    with the seconds it took."""
    step(f"re-creating {database} and migrating")
    recreate_database(database)
    manage(env, "migrate", "-v0")
    started = time.monotonic()
    loaded = load()
    return {"seconds": round(time.monotonic() - started, 1), **loaded}


def cases_on_gunicorn(
    children: Children,
    env: dict,
    *,
    workers: int,
    log_path: Path,
    noise_cores: float,
    measure: Callable[[int, int], tuple],
) -> dict:
    """gunicorn on a free port, and `measure(port, server_pid)` -> (cases, problems) between two timings
    of its bare view: the report's fields for them (cases, problems, ceiling, load average, and the cases
    during which other processes used more than `noise_cores`)."""
    port = free_port()
    server = start_gunicorn(children, env, workers=workers, port=port, log_path=log_path)
    load_before = os.getloadavg()
    (cases, problems), ceiling = around_the_bare_view(port, 200, lambda: measure(port, server.pid))
    return {
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "ceiling": ceiling,
        "cases": cases,
        "problems": problems,
        "shared_machine_phases": [c["name"] for c in cases if c["cpu"]["other_cores"] > noise_cores],
    }
