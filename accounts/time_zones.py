"""Which time zone a person reads times in: their merchant's.

A user of one merchant reads every time in that merchant's zone. Platform staff and users of several
merchants read them in the zone of the merchant a page is narrowed to (`merchant__id__exact`, as the
admin's merchant filter says), and otherwise in UTC, since one page may mix zones. Pages name the
zone they use.
"""

import zoneinfo
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from accounts.models import Merchant
from accounts.tenancy import can_access_merchant, merchant_ids_for

MERCHANT_FILTER_PARAM = "merchant__id__exact"


def time_zone_for(user, merchant_id=None) -> zoneinfo.ZoneInfo:
    ids = merchant_ids_for(user)
    chosen = None
    if merchant_id and str(merchant_id).isdigit() and can_access_merchant(user, merchant_id):
        chosen = int(merchant_id)
    elif ids is not None and len(ids) == 1:
        (chosen,) = ids
    name = Merchant.objects.filter(pk=chosen).values_list("time_zone", flat=True).first() if chosen else None
    return zoneinfo.ZoneInfo(name or settings.TIME_ZONE)


class MerchantTimeZoneMiddleware:
    """The admin's pages in the reader's merchant's time zone (the API keeps UTC offsets as sent)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/admin/"):
            return self.get_response(request)
        try:
            user = getattr(request, "user", None)
            if user is None or not user.is_authenticated:
                return self.get_response(request)
            zone = time_zone_for(user, request.GET.get(MERCHANT_FILTER_PARAM))
        except DatabaseError:
            # The database is out: the view meets the same error and answers 503 (OutageMiddleware); a
            # middleware's own error would be a 500.
            return self.get_response(request)
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def merchant_zone(merchant) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(merchant.time_zone)


def local_day_start(merchant, now: datetime) -> datetime:
    """Midnight that began the merchant's current day ("today" is the merchant's, not the server's)."""
    local = timezone.localtime(now, merchant_zone(merchant))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def local_week_start(merchant, now: datetime) -> datetime:
    """Monday's midnight of the merchant's current week."""
    today = local_day_start(merchant, now)
    monday = today.date() - timedelta(days=today.weekday())
    return datetime.combine(monday, time(), tzinfo=today.tzinfo)
