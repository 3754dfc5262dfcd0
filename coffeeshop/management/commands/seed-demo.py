from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Merchant, Role
from accounts.services import create_or_update_user
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


class Command(BaseCommand):
    help = "Load demo merchants, locations, materials and users (idempotent: safe to run on every start)."

    @transaction.atomic
    def handle(self, *args, **options):
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
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {len(merchants)} merchants, {len(MATERIALS)} materials each; "
                f"log in as {ADMIN[0]} / {ADMIN[1]}. "
                f"Demo Coffee Co's provisioning secret: {demo.provisioning_secret}"
            )
        )
