"""The fleet: where machines stand, what they are, how they authenticate and what they last reported.

DeviceBin lives here rather than in `inventory`: a bin is a physical part of the machine that the
heartbeat reports on its hot path and the device page shows inline, and `devices` must not depend on
the apps built on it. It carries the reported material *code*; `inventory` owns the catalogue those
codes come from, and the protocol edge checks a reported code against it.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Merchant
from accounts.tenancy import TenantQuerySet
from devices.rules import DEFAULT_LOW_THRESHOLD_PCT, bin_is_empty, bin_is_low


class Location(models.Model):
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="locations", verbose_name=_("merchant")
    )
    name = models.CharField(_("name"), max_length=120)
    address = models.CharField(_("address"), max_length=255, blank=True)
    city = models.CharField(_("city"), max_length=80, blank=True)
    latitude = models.DecimalField(_("latitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("longitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("location")
        verbose_name_plural = _("locations")
        ordering = ["merchant_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "name"], name="location_unique_name_per_merchant"),
            models.CheckConstraint(
                condition=Q(latitude__gte=-90, latitude__lte=90) | Q(latitude__isnull=True),
                name="location_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__gte=-180, longitude__lte=180) | Q(longitude__isnull=True),
                name="location_longitude_range",
            ),
        ]

    def __str__(self):
        return self.name


class DeviceState(models.TextChoices):
    """What the machine says it is doing. Whether it is online is the server's judgement, not a state."""

    UNKNOWN = "unknown", _("Not yet reported")
    IDLE = "idle", _("Idle")
    BREWING = "brewing", _("Brewing")
    CLEANING = "cleaning", _("Cleaning")
    MAINTENANCE = "maintenance", _("Maintenance")
    FAULT = "fault", _("Fault")


class DeviceQuerySet(TenantQuerySet):
    merchant_path = "merchant"


class Device(models.Model):
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="devices", verbose_name=_("merchant")
    )
    location = models.ForeignKey(
        Location,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="devices",
        verbose_name=_("location"),
    )
    serial = models.CharField(_("serial"), max_length=64, unique=True)
    model = models.CharField(_("model"), max_length=64)
    firmware = models.CharField(_("firmware"), max_length=32, blank=True)
    alias = models.CharField(_("alias"), max_length=120, blank=True)

    state = models.CharField(
        _("state"), max_length=16, choices=DeviceState.choices, default=DeviceState.UNKNOWN
    )
    is_online = models.BooleanField(_("online"), default=False)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    status_changed_at = models.DateTimeField(
        _("status changed"),
        default=timezone.now,
        help_text=_("When online/offline or the state last changed."),
    )
    temperature_c = models.FloatField(_("temperature (°C)"), null=True, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    wifi_ssid = models.CharField(_("Wi-Fi SSID"), max_length=64, blank=True)
    wifi_rssi_dbm = models.SmallIntegerField(_("Wi-Fi signal (dBm)"), null=True, blank=True)
    uptime_s = models.PositiveBigIntegerField(_("uptime (s)"), null=True, blank=True)
    package_version = models.CharField(_("recipe package"), max_length=32, blank=True)
    device_time = models.DateTimeField(_("machine clock at last report"), null=True, blank=True)
    offline_timeout_s = models.PositiveIntegerField(
        _("offline timeout (s)"),
        null=True,
        blank=True,
        help_text=_("Overrides the fleet default (DEVICE_OFFLINE_TIMEOUT_S) for this machine."),
    )
    registered_at = models.DateTimeField(_("registered"), default=timezone.now)
    # What the last full report looked like (hashes), so an unchanged heartbeat costs one UPDATE.
    report_fingerprint = models.CharField(max_length=32, blank=True, editable=False)
    bins_fingerprint = models.CharField(max_length=32, blank=True, editable=False)
    last_sampled_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = DeviceQuerySet.as_manager()

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        ordering = ["merchant_id", "serial"]
        indexes = [
            models.Index(fields=["merchant", "is_online"], name="device_merchant_online"),
            models.Index(fields=["merchant", "state"], name="device_merchant_state"),
            models.Index(fields=["merchant", "model"], name="device_merchant_model"),
            models.Index(fields=["model"], name="device_model"),
            models.Index(fields=["state"], name="device_state"),
            models.Index(fields=["status_changed_at"], name="device_status_changed"),
            models.Index(
                fields=["last_seen_at"], condition=Q(is_online=True), name="device_online_last_seen"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=DeviceState.values), name="device_state_valid"),
            models.CheckConstraint(
                condition=Q(offline_timeout_s__gt=0) | Q(offline_timeout_s__isnull=True),
                name="device_offline_timeout_positive",
            ),
        ]

    def __str__(self):
        return self.alias or self.serial

    @property
    def effective_offline_timeout(self) -> timedelta:
        return timedelta(seconds=self.offline_timeout_s or settings.DEVICE_OFFLINE_TIMEOUT_S)


class DeviceCredential(models.Model):
    """A machine's token, stored as its SHA-256; the token itself is shown once and never stored."""

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="credentials", verbose_name=_("device")
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True)
    token_prefix = models.CharField(
        _("token prefix"), max_length=8, help_text=_("To recognise a token, not to use it.")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("device credential")
        verbose_name_plural = _("device credentials")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device"], condition=Q(revoked_at__isnull=True), name="device_one_active_credential"
            ),
        ]

    def __str__(self):
        return f"{self.token_prefix}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class DeviceBinQuerySet(TenantQuerySet):
    merchant_path = "device__merchant"


class DeviceBin(models.Model):
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="bins", verbose_name=_("device")
    )
    index = models.PositiveSmallIntegerField(_("bin"))
    material_code = models.CharField(_("material"), max_length=64)
    unit = models.CharField(_("unit"), max_length=16, default="g")
    capacity = models.FloatField(_("capacity"))
    remaining = models.FloatField(_("remaining"))
    level_pct = models.FloatField(_("level (%)"))
    low_threshold_pct = models.FloatField(_("low-stock threshold (%)"), default=DEFAULT_LOW_THRESHOLD_PCT)
    threshold_follows_material = models.BooleanField(
        _("threshold follows the material"),
        default=True,
        help_text=_("The bin's threshold is its material's default, until staff set one for the bin."),
    )
    last_refilled_at = models.DateTimeField(_("last refilled"), null=True, blank=True)
    reported_at = models.DateTimeField(_("reported"), default=timezone.now)
    # The forecast (inventory.services.forecast): the drain since the last refill, the reading it was
    # last made from, and when the bin will be empty at that pace.
    drain_since_at = models.DateTimeField(_("draining since"), null=True, blank=True)
    drain_since_remaining = models.FloatField(_("remaining when the drain began"), null=True, blank=True)
    forecast_at = models.DateTimeField(_("forecast from the reading of"), null=True, blank=True)
    forecast_remaining = models.FloatField(_("remaining at the forecast"), null=True, blank=True)
    drain_per_day = models.FloatField(_("drain per day"), null=True, blank=True)
    empty_at = models.DateTimeField(_("expected empty"), null=True, blank=True)
    # From the consumption ledger (inventory.services.consumption), recomputed by its periodic job: the
    # average use per hour of the day (UTC) over the last 7 days, and the ledger against the level.
    use_by_hour = models.JSONField(_("use by hour of day"), null=True, blank=True)
    use_profiled_at = models.DateTimeField(_("consumption profiled"), null=True, blank=True)
    variance_since = models.DateTimeField(_("variance measured since"), null=True, blank=True)
    expected_use = models.FloatField(_("expected use (recipes × sales)"), null=True, blank=True)
    reported_drop = models.FloatField(_("reported drop"), null=True, blank=True)
    variance_pct = models.FloatField(_("variance (%)"), null=True, blank=True)
    is_variance_flagged = models.BooleanField(
        _("variance flagged"),
        default=False,
        help_text=_(
            "The level dropped more or less than the sales explain: leak, grinder drift or unrecorded sales."
        ),
    )

    objects = DeviceBinQuerySet.as_manager()

    class Meta:
        verbose_name = _("bin")
        verbose_name_plural = _("bins")
        ordering = ["device_id", "index"]
        indexes = [
            models.Index(fields=["material_code"], name="bin_material_code"),
            models.Index(fields=["level_pct"], name="bin_level_pct"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["device", "index"], name="bin_unique_index_per_device"),
            models.CheckConstraint(condition=Q(capacity__gt=0), name="bin_capacity_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("capacity")),
                name="bin_remaining_within_capacity",
            ),
            models.CheckConstraint(
                condition=Q(level_pct__gte=0, level_pct__lte=100), name="bin_level_pct_range"
            ),
            models.CheckConstraint(
                condition=Q(low_threshold_pct__gte=0, low_threshold_pct__lte=100),
                name="bin_low_threshold_pct_range",
            ),
        ]

    def __str__(self):
        return f"{self.device} #{self.index} {self.material_code}"

    @property
    def is_low(self) -> bool:
        return bin_is_low(self.level_pct, self.low_threshold_pct)

    @property
    def is_empty(self) -> bool:
        return bin_is_empty(self.remaining)


class StatusEvent(models.TextChoices):
    SAMPLE = "sample", _("Reading")
    STATE_CHANGED = "state_changed", _("State changed")
    ONLINE = "online", _("Came online")
    OFFLINE = "offline", _("Went offline")
    REGISTERED = "registered", _("Registered")


class DeviceStatusHistoryQuerySet(TenantQuerySet):
    merchant_path = "device__merchant"


class DeviceStatusHistory(models.Model):
    """A machine's status over time: every change, plus temperature samples (at most one per flush)."""

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="status_history", verbose_name=_("device")
    )
    recorded_at = models.DateTimeField(_("recorded"), default=timezone.now)
    device_time = models.DateTimeField(_("machine clock"), null=True, blank=True)
    event = models.CharField(_("event"), max_length=16, choices=StatusEvent.choices)
    state = models.CharField(_("state"), max_length=16, choices=DeviceState.choices)
    is_online = models.BooleanField(_("online"))
    temperature_c = models.FloatField(_("temperature (°C)"), null=True, blank=True)
    wifi_rssi_dbm = models.SmallIntegerField(_("Wi-Fi signal (dBm)"), null=True, blank=True)

    objects = DeviceStatusHistoryQuerySet.as_manager()

    class Meta:
        verbose_name = _("status record")
        verbose_name_plural = _("status history")
        ordering = ["-recorded_at"]
        indexes = [
            models.Index(fields=["device", "-recorded_at"], name="history_device_recent"),
            # The hourly fold reads an hour of the whole fleet; the prune the oldest records.
            models.Index(fields=["recorded_at"], name="history_recorded_at"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=DeviceState.values), name="history_state_valid"),
            models.CheckConstraint(condition=Q(event__in=StatusEvent.values), name="history_event_valid"),
        ]

    def __str__(self):
        return f"{self.device_id} {self.get_event_display()} {self.recorded_at:%Y-%m-%d %H:%M:%S}"


class DeviceStatusHour(models.Model):
    """One machine's hour, kept for good while raw history is pruned after STATUS_HISTORY_RAW_DAYS:
    how long it was online (of how long its state was known), its temperature and its events
    (devices.services.history_rollup)."""

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="status_hours", verbose_name=_("device")
    )
    hour = models.DateTimeField(_("hour"), help_text=_("Its start, in UTC."))
    online_s = models.FloatField(_("seconds online"))
    known_s = models.FloatField(_("seconds with a known state"))
    samples = models.PositiveIntegerField(_("records"))
    avg_temperature_c = models.FloatField(_("average temperature (°C)"), null=True, blank=True)
    min_temperature_c = models.FloatField(_("lowest temperature (°C)"), null=True, blank=True)
    max_temperature_c = models.FloatField(_("highest temperature (°C)"), null=True, blank=True)
    offline_events = models.PositiveIntegerField(_("went offline"), default=0)
    state_changes = models.PositiveIntegerField(_("state changes"), default=0)

    objects = DeviceStatusHistoryQuerySet.as_manager()

    class Meta:
        verbose_name = _("hour of status")
        verbose_name_plural = _("hours of status")
        ordering = ["device_id", "hour"]
        indexes = [models.Index(fields=["hour"], name="status_hour_hour")]
        constraints = [
            models.UniqueConstraint(fields=["device", "hour"], name="status_hour_once_per_device"),
            models.CheckConstraint(
                condition=Q(online_s__gte=0) & Q(online_s__lte=models.F("known_s")) & Q(known_s__lte=3600),
                name="status_hour_seconds_in_range",
            ),
        ]

    def __str__(self):
        return f"{self.device_id} {self.hour:%Y-%m-%d %H:00}"
