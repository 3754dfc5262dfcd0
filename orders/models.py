"""Sales as the machines report them, and the refunds staff make against them.

Merchant and location are copied onto each order when it arrives: sales reports group and filter by
them over millions of rows, and a sale belongs to where the machine stood when it sold, not to where
it stands after being moved. The machine's recipe package is copied too (its last reported one), so
sales and failures can be read per package version while a rollout runs.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Merchant
from accounts.tenancy import TenantQuerySet
from devices.models import Device, Location

MONEY = {"max_digits": 12, "decimal_places": 2}


class PaymentStatus(models.TextChoices):
    UNPAID = "unpaid", _("Unpaid")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Payment failed")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")
    REFUND_FAILED = "refund_failed", _("Refund failed")


MACHINE_PAYMENT_STATUSES = (PaymentStatus.PAID, PaymentStatus.UNPAID, PaymentStatus.FAILED)
REFUNDABLE_STATUSES = (PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUND_FAILED)


# The protocol's methods: every merchant takes them without defining anything.
BUILT_IN_PAYMENT_METHODS = {
    "wechat": _("WeChat Pay"),
    "alipay": _("Alipay"),
    "card": _("Card"),
    "corp": _("Corporate account"),
    "cash": _("Cash"),
}
# The reason of the exception an order opens when its payment method is one its merchant never defined.
UNKNOWN_PAYMENT_METHOD = "unknown_payment_method"


class PaymentMethod(models.Model):
    """A payment method a merchant takes beyond the protocol's built-in ones (a meal card, a local
    wallet), added by its Admin without code. A machine selling with a method its merchant never
    defined still makes a sale: it is taken as reported and opens an exception for staff to look at."""

    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, related_name="payment_methods", verbose_name=_("merchant")
    )
    code = models.SlugField(_("code"), max_length=32, help_text=_("As the machines report it."))
    name = models.CharField(_("name"), max_length=80)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("payment method")
        verbose_name_plural = _("payment methods")
        ordering = ["merchant__name", "code"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "code"], name="payment_method_once_per_merchant")
        ]

    def __str__(self):
        return self.name


class OrderQuerySet(TenantQuerySet):
    merchant_path = "merchant"


class Order(models.Model):
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="orders", verbose_name=_("merchant")
    )
    location = models.ForeignKey(
        Location,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="orders",
        verbose_name=_("location"),
    )
    device = models.ForeignKey(
        Device, on_delete=models.PROTECT, related_name="orders", verbose_name=_("device")
    )
    machine_order_id = models.CharField(_("machine's order id"), max_length=64)
    currency = models.CharField(_("currency"), max_length=3)
    total = models.DecimalField(_("total"), **MONEY)
    refunded_total = models.DecimalField(_("refunded"), default=Decimal("0.00"), **MONEY)
    payment_method = models.CharField(_("payment method"), max_length=32)
    payment_status = models.CharField(_("payment status"), max_length=24, choices=PaymentStatus.choices)
    transaction_id = models.CharField(_("provider transaction id"), max_length=128, blank=True)
    device_created_at = models.DateTimeField(_("machine time"))
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    is_test = models.BooleanField(_("test order"), default=False)
    package_version = models.CharField(
        _("recipe package"), max_length=32, blank=True,
        help_text=_("What the machine ran when the order was received (its last reported package)."),
    )  # fmt: skip
    content_hash = models.CharField(max_length=64, editable=False)

    is_exception = models.BooleanField(_("exception"), default=False)
    exception_reason = models.TextField(_("exception reason"), blank=True)
    exception_marked_at = models.DateTimeField(_("marked as exception"), null=True, blank=True)
    exception_marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("marked by"),
    )
    exception_resolution = models.TextField(_("resolution"), blank=True)
    exception_resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    exception_resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
    )

    objects = OrderQuerySet.as_manager()

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "machine_order_id"], name="order_unique_machine_order_id"
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
            models.CheckConstraint(
                condition=Q(refunded_total__gte=0) & Q(refunded_total__lte=F("total")),
                name="order_refunds_within_total",
            ),
            models.CheckConstraint(
                condition=Q(payment_status__in=PaymentStatus.values), name="order_payment_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["merchant", "-received_at"], name="order_merchant_received"),
            models.Index(fields=["device", "-received_at"], name="order_device_received"),
            models.Index(fields=["location", "-received_at"], name="order_location_received"),
            models.Index(fields=["merchant", "payment_status", "-received_at"], name="order_merchant_status"),
            models.Index(fields=["merchant", "payment_method", "-received_at"], name="order_merchant_method"),
            models.Index(fields=["-received_at"], name="order_received"),
            # The search box matches whole ids, case-insensitively (a customer reads one out): these make
            # that a look-up instead of a scan of millions of rows.
            models.Index(Upper("machine_order_id"), name="order_machine_order_id_upper"),
            models.Index(Upper("transaction_id"), name="order_transaction_id_upper"),
            models.Index(
                fields=["merchant", "-received_at"],
                condition=Q(is_exception=True),
                name="order_open_exceptions",
            ),
        ]

    def __str__(self):
        return self.machine_order_id

    @property
    def refundable_amount(self) -> Decimal:
        if self.payment_status not in REFUNDABLE_STATUSES:
            return Decimal("0.00")
        return self.total - self.refunded_total


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items", verbose_name=_("order"))
    position = models.PositiveSmallIntegerField(_("position"))
    product_id = models.CharField(_("product"), max_length=64)
    name = models.CharField(_("name as sold"), max_length=120)
    qty = models.PositiveIntegerField(_("quantity"))
    unit_price = models.DecimalField(_("unit price as sold"), **MONEY)
    recipe_version = models.CharField(_("recipe version"), max_length=32, blank=True)
    options = models.JSONField(_("options"), default=dict, blank=True)

    class Meta:
        verbose_name = _("item")
        verbose_name_plural = _("items")
        ordering = ["order_id", "position"]
        indexes = [models.Index(fields=["product_id"], name="order_item_product")]
        constraints = [
            models.UniqueConstraint(fields=["order", "position"], name="order_item_unique_position"),
            models.CheckConstraint(condition=Q(qty__gte=1), name="order_item_qty_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="order_item_price_not_negative"),
        ]

    def __str__(self):
        return f"{self.qty} × {self.name}"

    @property
    def line_total(self) -> Decimal:
        return self.qty * self.unit_price


class RefundStatus(models.TextChoices):
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class RefundQuerySet(TenantQuerySet):
    merchant_path = "order__merchant"


class Refund(models.Model):
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("order")
    )
    amount = models.DecimalField(_("amount"), **MONEY)
    reason = models.TextField(_("reason"))
    status = models.CharField(_("status"), max_length=16, choices=RefundStatus.choices)
    provider_refund_id = models.CharField(_("provider refund id"), max_length=128, blank=True)
    failure_reason = models.TextField(_("failure"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("by")
    )
    created_at = models.DateTimeField(_("when"), default=timezone.now)

    objects = RefundQuerySet.as_manager()

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=RefundStatus.values), name="refund_status_valid"),
        ]

    def __str__(self):
        return f"{self.amount} ({self.get_status_display()})"


class SalesRollupQuerySet(TenantQuerySet):
    merchant_path = "merchant"


class SalesRollup(models.Model):
    """What the sold orders of one machine's hour add up to, kept current as orders and refunds arrive
    (orders.services.rollups) and rebuildable from the orders (`manage.py rebuild-sales-rollups`), so
    the dashboard and analytics read hours instead of millions of orders.

    Counted as orders.selectors.sales_of counts: sold statuses only, test orders left out, net of
    refunds, by when the machine sold (`hour` is the UTC hour that `device_created_at` falls in).
    Merchant and location are those copied on the orders. A deleted location's hours keep its id
    (no database constraint) until a rebuild files them under no location, as the orders are."""

    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, related_name="+", verbose_name=_("merchant")
    )
    location = models.ForeignKey(
        Location,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("location"),
    )
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+", verbose_name=_("device"))
    hour = models.DateTimeField(_("hour"), help_text=_("Its start, in UTC."))
    currency = models.CharField(_("currency"), max_length=3)

    objects = SalesRollupQuerySet.as_manager()

    class Meta:
        abstract = True


class SalesHour(SalesRollup):
    payment_method = models.CharField(_("payment method"), max_length=32)
    orders = models.IntegerField(_("orders"))
    amount = models.DecimalField(_("amount"), **MONEY)

    class Meta:
        verbose_name = _("hour of sales")
        verbose_name_plural = _("hours of sales")
        constraints = [
            # Upserts name exactly these expressions (orders.services.rollups.SALES_KEY).
            models.UniqueConstraint(
                "merchant", "device", "hour", "currency", "payment_method", Coalesce("location", 0),
                name="sales_hour_once_per_key",
            ),
        ]  # fmt: skip
        indexes = [
            # Covering the dashboard's machine ranking (operations/machine_ranking.py), which reads
            # these columns for every machine of a range's edges: an index-only scan on PostgreSQL.
            models.Index(
                fields=["merchant", "hour"],
                include=["device", "currency", "orders", "amount"],
                name="sales_hour_merchant_hour_cov",
            ),
            models.Index(fields=["hour"], name="sales_hour_hour"),
        ]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.payment_method}: {self.orders}"


class ProductSalesHour(SalesRollup):
    product_id = models.CharField(_("product"), max_length=64)
    name = models.CharField(_("name as sold"), max_length=120)
    qty = models.IntegerField(_("quantity"))
    amount = models.DecimalField(_("amount"), help_text=_("Quantity × unit price as sold."), **MONEY)

    class Meta:
        verbose_name = _("hour of product sales")
        verbose_name_plural = _("hours of product sales")
        constraints = [
            models.UniqueConstraint(
                "merchant", "device", "hour", "currency", "product_id", "name", Coalesce("location", 0),
                name="product_sales_hour_once_per_key",
            ),
        ]  # fmt: skip
        indexes = [
            models.Index(fields=["merchant", "hour"], name="product_hour_merchant_hour"),
            models.Index(fields=["hour"], name="product_hour_hour"),
        ]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.name}: {self.qty}"


class MerchantRollup(models.Model):
    """The dashboard's coarser rollups, counted as SalesRollup counts (orders.services.rollups)."""

    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, db_index=False, related_name="+", verbose_name=_("merchant")
    )  # first in each one's unique constraint
    currency = models.CharField(_("currency"), max_length=3)

    objects = SalesRollupQuerySet.as_manager()

    class Meta:
        abstract = True


class MerchantSalesHour(MerchantRollup):
    """SalesHour summed over a merchant's machines and locations: what its dashboard reads (and the
    platform's, over all merchants), a few rows an hour at any number of machines."""

    hour = models.DateTimeField(_("hour"), help_text=_("Its start, in UTC."))
    payment_method = models.CharField(_("payment method"), max_length=32)
    orders = models.IntegerField(_("orders"))
    amount = models.DecimalField(_("amount"), **MONEY)

    class Meta:
        verbose_name = _("hour of a merchant's sales")
        verbose_name_plural = _("hours of merchants' sales")
        constraints = [
            models.UniqueConstraint(
                "merchant", "hour", "currency", "payment_method", name="merchant_sales_hour_once_per_key"
            ),
        ]
        indexes = [models.Index(fields=["hour"], name="merchant_sales_hour_hour")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.payment_method}: {self.orders}"


class MerchantProductSalesHour(MerchantRollup):
    """ProductSalesHour summed over a merchant's machines and locations."""

    hour = models.DateTimeField(_("hour"), help_text=_("Its start, in UTC."))
    product_id = models.CharField(_("product"), max_length=64)
    name = models.CharField(_("name as sold"), max_length=120)
    qty = models.IntegerField(_("quantity"))
    amount = models.DecimalField(_("amount"), help_text=_("Quantity × unit price as sold."), **MONEY)

    class Meta:
        verbose_name = _("hour of a merchant's product sales")
        verbose_name_plural = _("hours of merchants' product sales")
        constraints = [
            models.UniqueConstraint(
                "merchant", "hour", "currency", "product_id", "name",
                name="merchant_product_hour_once_per_key",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["hour"], name="merchant_product_hour_hour")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.name}: {self.qty}"


class DeviceSalesDay(MerchantRollup):
    """What one machine sold on one day of its merchant's time zone (the day `device_created_at` falls
    in there), counted as SalesHour counts: the dashboard ranks machines on these. Days of another
    zone are read from SalesHour at their edges (operations.dashboard.top_and_silent_machines)."""

    location = models.ForeignKey(
        Location,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("location"),
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, db_index=False, related_name="+", verbose_name=_("device")
    )  # device_sales_day_device_day's first column
    day = models.DateField(_("day"), help_text=_("In the merchant's time zone."))
    orders = models.IntegerField(_("orders"))
    amount = models.DecimalField(_("amount"), **MONEY)

    class Meta:
        verbose_name = _("day of a machine's sales")
        verbose_name_plural = _("days of machines' sales")
        constraints = [
            models.UniqueConstraint(
                "merchant", "device", "day", "currency", Coalesce("location", 0),
                name="device_sales_day_once_per_key",
            ),
        ]  # fmt: skip
        indexes = [
            # Covering the machine ranking's days, as SalesHour's index covers its edges.
            models.Index(
                fields=["merchant", "day"],
                include=["device", "currency", "orders", "amount"],
                name="device_sales_day_merchant_cov",
            ),
            models.Index(fields=["day"], name="device_sales_day_day"),
            models.Index(fields=["device", "day"], name="device_sales_day_device_day"),
        ]

    def __str__(self):
        return f"{self.day} {self.currency}: {self.orders}"
