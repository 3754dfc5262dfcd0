import time
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.models import Merchant, Role, User
from accounts.services import create_or_update_user
from coffeeshop.demo.week import DEFAULT_SEED, demo_fleets, seed_week
from devices.models import Location
from inventory.models import Material
from operations.models import NotificationChannel, Severity

# Two merchants in different time zones and currencies, so that "today" and every sum are theirs.
MERCHANTS = {
    "Demo Coffee Co": {
        "time_zone": "Asia/Shanghai",
        "currency": "CNY",
        "locations": [
            ("Shanghai Tower Lobby", "Shanghai", "31.233500", "121.505500"),
            ("Hongqiao Station Hall B", "Shanghai", "31.194100", "121.320500"),
            ("Jing'an Office Park", "Shanghai", "31.228900", "121.448100"),
        ],
    },
    "Bean Machine Ltd": {
        "time_zone": "Europe/London",
        "currency": "GBP",
        "locations": [
            ("King's Cross Concourse", "London", "51.531600", "-0.124400"),
            ("Canary Wharf Atrium", "London", "51.505400", "-0.023500"),
        ],
    },
}
# Each merchant keeps its own catalogue; the demo merchants start with the same one.
# (code, name, unit, kind, pack size: what the pick list rounds to; water is poured, not packed)
MATERIALS = [
    ("BEAN-ARABICA", "Arabica beans", "g", "bean", 1000),
    ("BEAN-ROBUSTA", "Robusta beans", "g", "bean", 1000),
    ("MILK-POWDER", "Milk powder", "g", "milk", 1000),
    ("SUGAR", "Sugar", "g", "powder", 1000),
    ("CHOCOLATE", "Chocolate powder", "g", "powder", 500),
    ("WATER", "Water", "ml", "water", None),
    ("CUP-12OZ", "Paper cup 12 oz", "pcs", "cup", 50),
]
ADMIN = ("admin@example.com", "Admin123!", "Admin User")
DEMO_STAFF = [
    ("ops@example.com", "Ops12345!", "Olivia Ops", Role.OPS),
    ("viewer@example.com", "Viewer123!", "Victor Viewer", Role.VIEWER),
]


def _moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("give the offset, e.g. 2026-12-07T16:30:00+00:00")
    return moment


class Command(BaseCommand):
    help = (
        "Load demo merchants, locations, materials and users, register the demo fleets (Shanghai and "
        "London) and give each new machine the week of sales and connectivity before now (idempotent: "
        "safe to run on every start)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fleet-size",
            type=int,
            help="Demo Coffee Co's machines SIM-000001... (default $FLEET_SIZE, else 20).",
        )
        parser.add_argument(
            "--london-fleet-size",
            type=int,
            help="Bean Machine Ltd's machines BML-000001... (default $LONDON_FLEET_SIZE, else 3).",
        )
        parser.add_argument(
            "--sales-per-hour",
            type=float,
            help="Each machine's average sales per hour, as the live fleets sell "
            "(default $DEMO_SALES_PER_HOUR, else 2).",
        )
        parser.add_argument(
            "--now", type=_moment, help="Write the week before this moment (ISO 8601 with offset; tests)."
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="The history's random seed.")
        parser.add_argument(
            "--no-history", action="store_true", help="Register the fleets but write no sales or history."
        )

    def handle(self, *args, **options):
        started = time.monotonic()
        with transaction.atomic():
            demo = self._load_demo()
            fleets = demo_fleets(options["fleet_size"], options["london_fleet_size"])
            if any(fleet.size < 0 for fleet in fleets):
                raise CommandError("A fleet size cannot be negative.")
            report = seed_week(
                fleets,
                refunded_by=User.objects.get(email=ADMIN[0]),
                data_dir=Path(settings.DATA_DIR),
                now=options["now"],
                sales_per_hour=options["sales_per_hour"],
                seed=options["seed"],
                history=not options["no_history"],
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {len(MERCHANTS)} merchants, {len(MATERIALS)} materials each; "
                f"log in as {ADMIN[0]} / {ADMIN[1]}. "
                f"Demo Coffee Co's provisioning secret: {demo.provisioning_secret}"
            )
        )
        machines = ", ".join(f"{name}: {count}" for name, count in report.machines.items())
        self.stdout.write(
            f"Demo fleets: {machines} machines ({report.registered} newly registered); "
            f"{report.with_history} given a week of history: {report.orders} orders, {report.refunds} "
            f"refunds, {report.status_records} status records ({time.monotonic() - started:.1f} s)."
        )

    def _load_demo(self) -> Merchant:
        merchants = {}
        for name, demo in MERCHANTS.items():
            where = {"time_zone": demo["time_zone"], "currency": demo["currency"]}
            merchant, _ = Merchant.objects.update_or_create(
                name=name, defaults=where, create_defaults={"contact_email": "ops@example.com", **where}
            )
            merchants[name] = merchant
            for location_name, city, latitude, longitude in demo["locations"]:
                Location.objects.get_or_create(
                    merchant=merchant,
                    name=location_name,
                    defaults={"city": city, "latitude": latitude, "longitude": longitude},
                )
            for code, material_name, unit, kind, pack_size in MATERIALS:
                Material.objects.get_or_create(
                    merchant=merchant,
                    code=code,
                    defaults={"name": material_name, "unit": unit, "kind": kind, "pack_size": pack_size},
                )
        email, password, name = ADMIN
        create_or_update_user(
            email=email,
            password=password,
            name=name,
            role=Role.ADMIN,
            is_platform_staff=True,
            is_superuser=True,
        )
        demo = merchants["Demo Coffee Co"]
        # Critical alarms of the demo fleet are mailed; the development mail backend prints them in the
        # worker's log.
        NotificationChannel.objects.get_or_create(
            merchant=demo,
            kind=NotificationChannel.Kind.EMAIL,
            target="ops@example.com",
            defaults={"min_severity": Severity.CRITICAL},
        )
        for email, password, name, role in DEMO_STAFF:
            create_or_update_user(email=email, password=password, name=name, role=role, merchants=[demo])
        return demo
