from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Merchant, Role
from accounts.services import create_or_update_user


class Command(BaseCommand):
    help = "Create a back-office user, or update an existing one (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--role", choices=Role.values, default=Role.ADMIN)
        parser.add_argument(
            "--merchant",
            action="append",
            default=[],
            metavar="NAME",
            help="Merchant the user belongs to (repeatable). Without one the user is platform staff.",
        )
        parser.add_argument("--superuser", action="store_true", help="Also a Django superuser.")

    @transaction.atomic
    def handle(self, *args, email, password, name, role, merchant, superuser, **options):
        merchants = []
        for merchant_name in merchant:
            found = Merchant.objects.filter(name=merchant_name).first()
            if found is None:
                raise CommandError(f"No merchant named {merchant_name!r}.")
            merchants.append(found)
        user, created = create_or_update_user(
            email=email,
            password=password,
            name=name,
            role=role,
            merchants=merchants,
            is_platform_staff=not merchants,
            is_superuser=superuser,
        )
        scope = ", ".join(m.name for m in merchants) or "every merchant (platform staff)"
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} {user.email} ({user.get_role_display()}) for {scope}."))
