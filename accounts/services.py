"""Writes that carry a rule for users and merchants."""

from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import Merchant, Role, User, new_provisioning_secret
from accounts.tenancy import ACCESS_MERCHANT, forget_merchant_ids
from audit import services as audit


@transaction.atomic
def create_or_update_user(
    *,
    email: str,
    password: str,
    name: str = "",
    role: str = Role.VIEWER,
    is_platform_staff: bool = False,
    merchants=(),
    is_superuser: bool = False,
) -> tuple[User, bool]:
    """Create the user, or update role, name, password and merchants of an existing one (idempotent)."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}")
    user = User.objects.filter(email__iexact=email).first()
    created = user is None
    if created:
        user = User(email=User.objects.normalize_email(email).lower())
    user.name = name or user.name
    user.role = role
    user.is_platform_staff = is_platform_staff
    user.is_superuser = is_superuser
    user.is_staff = True
    user.set_password(password)
    user.save()
    for merchant in merchants:
        grant_merchant_access(user, merchant)
    audit.record(
        "user.created" if created else "user.updated",
        user,
        merchant_id=None,
        changes={
            "role": role,
            "is_platform_staff": is_platform_staff,
            "merchants": [m.pk for m in merchants],
        },
    )
    return user, created


def grant_merchant_access(user: User, merchant: Merchant) -> None:
    assign_perm(ACCESS_MERCHANT, user, merchant)
    forget_merchant_ids(user)
    audit.record("user.merchant_granted", user, merchant_id=merchant.pk, changes={"merchant": merchant.name})


def revoke_merchant_access(user: User, merchant: Merchant) -> None:
    remove_perm(ACCESS_MERCHANT, user, merchant)
    forget_merchant_ids(user)
    audit.record("user.merchant_revoked", user, merchant_id=merchant.pk, changes={"merchant": merchant.name})


@transaction.atomic
def update_merchant(merchant: Merchant, **changes) -> Merchant:
    """Contacts, name and status (suspending a merchant is the platform's decision: callers check)."""
    audit.record("merchant.updated", merchant, changes=audit.save_changes(merchant, changes))
    return merchant


def rotate_provisioning_secret(merchant: Merchant) -> str:
    """A new secret for machines registering from now on; registered machines keep their tokens."""
    merchant.provisioning_secret = new_provisioning_secret()
    merchant.save(update_fields=["provisioning_secret"])
    audit.record("merchant.secret_rotated", merchant)
    return merchant.provisioning_secret
