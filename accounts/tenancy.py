"""The one tenancy rule, used by every queryset in admin, API and WebSocket alike.

A platform-staff user (or a superuser) sees every merchant; anyone else sees exactly the merchants on
which they hold django-guardian's `accounts.access_merchant` object permission. Models that belong to a
merchant use `TenantQuerySet` and name the path to it in `merchant_path`.
"""

from django.db import models

ACCESS_MERCHANT = "accounts.access_merchant"
_CACHE_ATTR = "_coffeeshop_merchant_ids"


def sees_all_merchants(user) -> bool:
    return bool(
        user and user.is_authenticated and user.is_active and (user.is_superuser or user.is_platform_staff)
    )


def merchant_ids_for(user) -> frozenset[int] | None:
    """The ids of the merchants `user` may see; None means every merchant. Cached on the user object."""
    if sees_all_merchants(user):
        return None
    if not (user and user.is_authenticated and user.is_active):
        return frozenset()
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        from guardian.shortcuts import get_objects_for_user

        from accounts.models import Merchant

        cached = frozenset(
            get_objects_for_user(
                user, ACCESS_MERCHANT, klass=Merchant, accept_global_perms=False
            ).values_list("pk", flat=True)
        )
        setattr(user, _CACHE_ATTR, cached)
    return cached


def merchant_ids_already_read(user) -> frozenset[int] | None:
    """The merchant ids `merchant_ids_for` has cached on `user` this request, or None (never a query)."""
    return getattr(user, _CACHE_ATTR, None)


def forget_merchant_ids(user) -> None:
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def can_access_merchant(user, merchant_id) -> bool:
    ids = merchant_ids_for(user)
    return ids is None or (merchant_id is not None and int(merchant_id) in ids)


class TenantQuerySet(models.QuerySet):
    merchant_path = "merchant"

    def for_user(self, user):
        ids = merchant_ids_for(user)
        if ids is None:
            return self
        if not ids:
            return self.none()
        return self.filter(**{f"{self.merchant_path}__in": ids})
