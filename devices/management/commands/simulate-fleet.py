"""Run a fleet of simulated coffee machines against a coffeeshop server, for demos and load checks.

A thin shell around the `simulator` package (which also runs on its own: `python -m simulator`): the
only Django here is reading a merchant's provisioning secret when none is given and the data directory
for the machines' order counters; the simulator gets plain values, so it can be pointed at any server.
Machines cannot say where they stand (registration carries no location), so for the demo the shell
also does what staff would: it places the merchant's machines that have no location at its locations,
round robin, as they register (`--no-place` leaves them unplaced).
"""

import threading
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
        parser.add_argument(
            "--no-place",
            action="store_true",
            help="Leave registered machines without a location (by default they are placed, round robin).",
        )
        add_fleet_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        secret = options["secret"] or self._provisioning_secret(options["merchant"])
        console = Console(self.stdout.write, self.style.WARNING, self.style.SUCCESS)
        if not options["no_place"]:
            stop = threading.Event()
            threading.Thread(target=_keep_placing, args=(secret, stop), daemon=True).start()
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


PLACE_EVERY_S = 10


def place_unplaced_machines(provisioning_secret: str) -> int:
    """The merchant's machines without a location, placed at its locations round robin (as staff
    would, through the service the admin uses). Returns how many were placed."""
    from accounts.models import Merchant
    from devices.models import Device
    from devices.services import update_device_settings

    merchant = Merchant.objects.filter(provisioning_secret=provisioning_secret).first()
    locations = list(merchant.locations.order_by("pk")) if merchant else []
    if not locations:
        return 0
    placed = Device.objects.filter(merchant=merchant, location__isnull=False).count()
    unplaced = Device.objects.filter(merchant=merchant, location__isnull=True).order_by("pk")
    for n, device in enumerate(unplaced):
        update_device_settings(device, location=locations[(placed + n) % len(locations)])
    return len(unplaced)


def _keep_placing(provisioning_secret: str, stop: threading.Event) -> None:
    from django.db import DatabaseError, connections

    while not stop.wait(PLACE_EVERY_S):
        try:
            place_unplaced_machines(provisioning_secret)
        except DatabaseError:
            pass  # the next round tries again
        finally:
            connections.close_all()
