import secrets
import zoneinfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")
    OPS = "ops", _("Ops")
    VIEWER = "viewer", _("Viewer")


class Capability(models.TextChoices):
    """What a role may do; the matrix below is the single source of truth (README shows it)."""

    VIEW = "view", _("Read everything of their merchants")
    OPERATE_DEVICES = "operate_devices", _("Operate machines: edit, rotate or revoke tokens, send commands")
    REFUND = "refund", _("Refund orders and resolve exceptions")
    MANAGE_MATERIALS = "manage_materials", _("Manage materials, bins and refills")
    MANAGE_RECIPES = "manage_recipes", _("Manage recipes, their versions, packages and rollouts")
    MANAGE_USERS = "manage_users", _("Manage users")
    MANAGE_MERCHANTS = (
        "manage_merchants",
        _("Manage merchants, locations, payment methods and provisioning secrets"),
    )
    MANAGE_SETTINGS = "manage_settings", _("Manage settings and schedules")


ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({Capability.VIEW}),
    Role.OPS: frozenset(
        {
            Capability.VIEW,
            Capability.OPERATE_DEVICES,
            Capability.REFUND,
            Capability.MANAGE_MATERIALS,
            Capability.MANAGE_RECIPES,
        }
    ),
    Role.ADMIN: frozenset(Capability.values),
}


def new_provisioning_secret() -> str:
    return secrets.token_urlsafe(24)


def default_time_zone() -> str:
    return settings.MERCHANT_DEFAULT_TIME_ZONE


def default_currency() -> str:
    return settings.MERCHANT_DEFAULT_CURRENCY


def validate_time_zone(name: str) -> None:
    if name not in zoneinfo.available_timezones():
        raise ValidationError(
            _("%(name)s is not a time zone (an IANA name such as Asia/Shanghai)."), params={"name": name}
        )


currency_code_validator = RegexValidator(
    r"^[A-Z]{3}$", _("A currency is its three-letter ISO 4217 code, such as CNY.")
)


class Merchant(models.Model):
    """A tenant: an operator company whose machines, orders and staff are walled off from the others."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    name = models.CharField(_("name"), max_length=120, unique=True)
    contact_name = models.CharField(_("contact name"), max_length=120, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=40, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    provisioning_secret = models.CharField(
        _("provisioning secret"),
        max_length=64,
        unique=True,
        default=new_provisioning_secret,
        help_text=_("Machines present it to register with this merchant."),
    )
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text=_("Its days (today, each day of a trend) and every time its staff read are in this zone."),
    )
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default=default_currency,
        validators=[currency_code_validator],
        help_text=_("What its figures are summed in; sales in another currency are shown on their own."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        ordering = ["name"]
        permissions = [("access_merchant", _("Can access the merchant's data"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended"]), name="merchant_status_valid"
            ),
        ]

    def __str__(self):
        return self.name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email, password, **fields):
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **fields):
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True, is_platform_staff=True, role=Role.ADMIN)
        return self._create(email, password, **fields)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A back-office user. Logs in with e-mail; sees every merchant only as platform staff."""

    email = models.EmailField(_("e-mail"), unique=True)
    name = models.CharField(_("name"), max_length=120, blank=True)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.VIEWER)
    is_platform_staff = models.BooleanField(
        _("platform staff"), default=False, help_text=_("Sees and acts on every merchant's data.")
    )
    is_staff = models.BooleanField(_("may log into the admin"), default=True)
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("joined"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["email"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=["admin", "ops", "viewer"]), name="user_role_valid"
            ),
        ]

    def __str__(self):
        return self.name or self.email

    @property
    def capabilities(self) -> frozenset[str]:
        if not self.is_active:
            return frozenset()
        if self.is_superuser:
            return ROLE_CAPABILITIES[Role.ADMIN]
        return ROLE_CAPABILITIES.get(self.role, frozenset())

    def can(self, capability: str) -> bool:
        return capability in self.capabilities
