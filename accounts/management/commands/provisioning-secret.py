from django.core.management.base import BaseCommand, CommandError

from accounts.models import Merchant
from accounts.services import rotate_provisioning_secret


class Command(BaseCommand):
    help = "Print a merchant's provisioning secret (machines register with it); --rotate issues a new one."

    def add_arguments(self, parser):
        parser.add_argument("merchant", metavar="MERCHANT NAME")
        parser.add_argument("--rotate", action="store_true")

    def handle(self, *args, merchant, rotate, **options):
        found = Merchant.objects.filter(name=merchant).first()
        if found is None:
            raise CommandError(f"No merchant named {merchant!r}.")
        secret = rotate_provisioning_secret(found) if rotate else found.provisioning_secret
        self.stdout.write(secret)
