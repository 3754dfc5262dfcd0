"""What the request id and the access line cost a request, beside a bare JSON view, in the same run.

    .venv/bin/python bench/request_logs.py [--requests 20000] [--rounds 5]

In one process, without sockets: the bare view (a JsonResponse, as /bench/ceiling answers) called
directly, then through `RequestIdMiddleware` with the production handler (LOG_FORMAT=json, written
to /dev/null), with and without an X-Request-ID from the caller. CPU time per request (process
time, best of --rounds) and the added cost as a share of the bare view. Served by gunicorn, the bare
view costs several times more (parsing, the socket, Django's handler), so the share of a real request
is smaller than printed; the quiet heartbeat costs about 0.7 ms of CPU.
"""

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeshop.settings")
os.environ["LOG_FORMAT"] = "json"

import django

django.setup()

from django.http import JsonResponse  # noqa: E402
from django.test import RequestFactory  # noqa: E402

from coffeeshop.request_id import RequestIdMiddleware  # noqa: E402


def bare_view(request):
    return JsonResponse({"ok": True, "data": {"status": "fine"}})


def best_cpu_us(call, requests, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for request in requests:
            call(request)
        best = min(best, (time.process_time() - started) / len(requests) * 1e6)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    factory = RequestFactory()
    plain = [factory.get("/api/v1/devices/7/status") for _ in range(args.requests)]
    offered = [factory.get("/api/v1/devices/7/status", HTTP_X_REQUEST_ID="lb-1234abcd") for _ in plain]
    with_ids = RequestIdMiddleware(bare_view)

    bare = best_cpu_us(bare_view, plain, args.rounds)
    generated = best_cpu_us(with_ids, plain, args.rounds)
    kept = best_cpu_us(with_ids, offered, args.rounds)
    load = os.getloadavg()[0]
    print(f"load average (1 min) {load:.2f}, {args.requests} requests x best of {args.rounds}")
    print("| case | CPU µs / request | added µs | added / bare view |")
    print("|---|---|---|---|")
    print(f"| bare view | {bare:.1f} | | |")
    for name, cost in (("+ middleware, new id", generated), ("+ middleware, caller's id", kept)):
        print(f"| {name} | {cost:.1f} | {cost - bare:.1f} | {(cost - bare) / bare:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
