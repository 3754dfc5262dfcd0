"""The payment provider seam. Refunds go through a gateway chosen by settings.PAYMENT_GATEWAY.

The default, `RecordedRefundGateway`, is for operators who pay refunds back through the provider's own
console or in cash: it records the refund and always succeeds. A real provider integration (WeChat Pay,
Alipay) implements `refund()` and may fail; the refund service handles both outcomes.
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class RefundOutcome:
    succeeded: bool
    provider_refund_id: str = ""
    failure_reason: str = ""


class RecordedRefundGateway:
    def refund(self, *, order, amount: Decimal, reason: str) -> RefundOutcome:
        return RefundOutcome(
            succeeded=True, provider_refund_id=f"recorded-{order.pk}-{order.refunds.count() + 1}"
        )


@lru_cache(maxsize=4)
def _gateway_for(path: str):
    return import_string(path)()


def payment_gateway():
    return _gateway_for(settings.PAYMENT_GATEWAY)
