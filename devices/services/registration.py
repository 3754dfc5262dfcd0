"""A machine joins its merchant's fleet by presenting the merchant's provisioning secret."""

import hmac
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Merchant
from audit import services as audit
from coffeeshop.exceptions import Conflict, Forbidden
from devices.models import Device, DeviceState, DeviceStatusHistory, StatusEvent
from devices.services.credentials import issue_token


@dataclass(frozen=True)
class Registration:
    device: Device
    token: str
    created: bool


def merchant_for_secret(secret: str) -> Merchant | None:
    if not secret:
        return None
    merchant = Merchant.objects.filter(provisioning_secret=secret, status=Merchant.Status.ACTIVE).first()
    # The lookup is by an indexed unique column; the constant-time compare keeps a near miss from
    # answering faster than a far one.
    if merchant is None or not hmac.compare_digest(merchant.provisioning_secret, secret):
        return None
    return merchant


def register_device(
    *, serial: str, model: str, firmware: str, provisioning_secret: str, alias: str = ""
) -> Registration:
    """Register a new machine (created=True) or re-register a known one, keeping all of its data.

    Re-registering revokes the old token and issues a new one: a machine that lost its token gets back
    in with its merchant's secret. Raises Forbidden for a wrong secret and Conflict for a serial that
    belongs to another merchant.
    """
    merchant = merchant_for_secret(provisioning_secret)
    if merchant is None:
        raise Forbidden(_("Unknown or missing provisioning secret."))
    try:
        return _register(merchant, serial, model, firmware, alias)
    except IntegrityError:
        # Two first registrations of one serial raced; the loser re-registers the winner's row.
        return _register(merchant, serial, model, firmware, alias)


@transaction.atomic
def _register(merchant: Merchant, serial: str, model: str, firmware: str, alias: str) -> Registration:
    device = Device.objects.select_for_update().filter(serial=serial).first()
    if device is not None and device.merchant_id != merchant.pk:
        raise Conflict(_("Serial %(serial)s is registered to another merchant.") % {"serial": serial})
    created = device is None
    now = timezone.now()
    if created:
        with transaction.atomic():
            device = Device.objects.create(
                merchant=merchant,
                serial=serial,
                model=model,
                firmware=firmware,
                alias=alias,
                registered_at=now,
                status_changed_at=now,
            )
        DeviceStatusHistory.objects.create(
            device=device,
            recorded_at=now,
            event=StatusEvent.REGISTERED,
            state=DeviceState.UNKNOWN,
            is_online=False,
        )
    else:
        device.model = model or device.model
        device.firmware = firmware or device.firmware
        device.alias = alias or device.alias
        device.save(update_fields=["model", "firmware", "alias"])
    token = issue_token(device)
    audit.record(
        "device.registered" if created else "device.reregistered",
        device,
        source=audit.Source.MACHINE,
        device=device,
        changes={"serial": serial, "model": device.model, "firmware": device.firmware, "alias": device.alias},
    )
    return Registration(device=device, token=token, created=created)
