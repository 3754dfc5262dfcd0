"""Run a fleet of simulated coffee machines against a coffeeshop server, for demos and load checks.

A thin shell around the `simulator` package (which also runs on its own: `python -m simulator`): the
only Django here is reading a merchant's provisioning secret when none is given and the data directory
for the machines' order counters; the simulator gets plain values, so it can be pointed at any server.
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator import FleetConfigurationError
from simulator.cli import DESCRIPTION, Console, add_fleet_arguments, simulate


class Command(BaseCommand):
    help = DESCRIPTION

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--secret", help="The merchant's provisioning secret.")
        source.add_argument(
            "--merchant",
            help="Use the provisioning secret of the merchant so named (default: the first).",
        )
        add_fleet_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        secret = options["secret"] or self._provisioning_secret(options["merchant"])
        console = Console(self.stdout.write, self.style.WARNING, self.style.SUCCESS)
        try:
            simulate(secret, options, Path(settings.DATA_DIR), console)
        except FleetConfigurationError as error:
            raise CommandError(str(error)) from error

    def _provisioning_secret(self, merchant_name: str | None) -> str:
        from accounts.models import Merchant

        merchants = Merchant.objects.order_by("id")
        merchant = merchants.filter(name=merchant_name).first() if merchant_name else merchants.first()
        if merchant is None:
            wanted = f"named {merchant_name!r}" if merchant_name else "at all"
            raise CommandError(f"There is no merchant {wanted}; create one or pass --secret.")
        if not merchant.provisioning_secret:
            raise CommandError(f"Merchant {merchant.name!r} has no provisioning secret.")
        return merchant.provisioning_secret
