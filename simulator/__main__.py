"""`python -m simulator`: run a simulated fleet against any server, without Django.

The same options as `manage.py simulate-fleet`, except that the provisioning secret is given
(`--secret`): only the Django command can look a merchant's up. The order counters are kept under
$COFFEESHOP_DATA_DIR (default ./.data), where the Django command keeps them when run from the repo.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from simulator.cli import DESCRIPTION, Console, add_fleet_arguments, simulate
from simulator.errors import FleetConfigurationError


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=DESCRIPTION)
    parser.add_argument("--secret", required=True, help="The merchant's provisioning secret.")
    add_fleet_arguments(parser)
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=1,
        help="0: no event lines, only warnings and the final counters; 1: a line per event (default); "
        "3: the simulator's and httpx's own debug logs as well.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    command_line = parser()
    options = vars(command_line.parse_args(argv))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    data_dir = Path(os.environ.get("COFFEESHOP_DATA_DIR") or ".data")
    try:
        simulate(options["secret"], options, data_dir, Console(write=lambda line: print(line, flush=True)))
    except FleetConfigurationError as error:
        command_line.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
