"""The recipes issue's figures in one command: days to empty for 5,000 machines × 8 bins from a week of
consumption (bench/recipes_forecast.py), the pick list of a 500-machine location set
(bench/recipes_picklist.py) and a package build of 200 recipes with its downloads
(bench/recipes_packages.py), each beside the bare view of the same server in its own run.

    .venv/bin/python bench/recipes.py [--part all|forecast|picklist|packages] [--quick]

Each part is its own script with its own database, server and results file (bench/results/); this one
runs them one after the other (they would only slow each other down side by side on two cores),
passes each its Redis database, and exits 1 if any part did. `--quick` runs small versions (a few
hundred machines, fewer requests) to check the benches work, not to measure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = {
    "forecast": (["bench/recipes_forecast.py"], ["--machines", "300", "--page-requests", "5"]),
    "picklist": (["bench/recipes_picklist.py"], ["--machines", "50", "--requests", "5"]),
    "packages": (["bench/recipes_packages.py"], ["--recipes", "20", "--downloads", "20"]),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["all", *PARTS], default="all")
    parser.add_argument("--quick", action="store_true", help="small runs: check the benches, do not measure")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6", help="Redis for the servers")
    args = parser.parse_args(argv)
    failed = []
    for name, (script, quick) in PARTS.items():
        if args.part not in ("all", name):
            continue
        command = [sys.executable, *script, "--redis-url", args.redis_url, *(quick if args.quick else [])]
        print(f"\n### {name}: {' '.join(command[1:])}\n", flush=True)
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nFailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
