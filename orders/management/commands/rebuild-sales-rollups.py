from datetime import date

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Merchant
from orders.services.rollups import rebuild_sales_rollups


class Command(BaseCommand):
    help = (
        "Recompute the sales rollups the dashboard and analytics read (machines' and merchants' hours, "
        "machines' days in their merchant's zone) from the orders, a UTC day per transaction (safe to "
        "run again, and while orders arrive). By default every day with sales. Run it for a merchant "
        "whose time zone changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--merchant", type=int, metavar="ID", help="Only this merchant's sales.")
        parser.add_argument("--from", dest="first_day", type=date.fromisoformat, metavar="YYYY-MM-DD")
        parser.add_argument("--to", dest="last_day", type=date.fromisoformat, metavar="YYYY-MM-DD")

    def handle(self, *args, merchant, first_day, last_day, **options):
        if merchant is not None and not Merchant.objects.filter(pk=merchant).exists():
            raise CommandError(f"No merchant with id {merchant}.")
        if first_day and last_day and first_day > last_day:
            raise CommandError("--from is after --to.")
        days = rebuild_sales_rollups(merchant_id=merchant, first_day=first_day, last_day=last_day)
        self.stdout.write(f"Rebuilt {days} day(s) of sales rollups.")
