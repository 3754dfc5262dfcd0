"""The audit trail's recorder: `record(action, target, changes)` from any service.

Who acted is not a parameter (`audit.context` knows it), so services keep taking plain values.
"""

from audit.context import who_is_acting
from audit.models import OperationLog

Source = OperationLog.Source
SENSITIVE = ("password", "token", "secret")
ADMIN_ACTIONS = {1: "admin.added", 2: "admin.changed", 3: "admin.deleted"}


def scrub(changes: dict) -> dict:
    return {k: ("***" if any(word in k.lower() for word in SENSITIVE) else v) for k, v in changes.items()}


def as_text(value) -> str | None:
    return None if value is None else str(value)


def save_changes(instance, values: dict, **save_options) -> dict:
    """Set `values` on `instance`, save it, and return what changed, `{field: [before, after]}` as
    text: the `changes` of an edit's audit row."""
    changed = {}
    for field, value in values.items():
        before = getattr(instance, field)
        setattr(instance, field, value)
        if before != value:
            changed[field] = [as_text(before), as_text(value)]
    instance.save(**save_options)
    return changed


def merchant_id_of(target) -> int | None:
    """The merchant an audited object belongs to: its own `merchant_id`, or itself if it is one."""
    if target is None:
        return None
    merchant_id = getattr(target, "merchant_id", None)
    if merchant_id is None and target._meta.label == "accounts.Merchant":
        merchant_id = target.pk
    return merchant_id


def record(
    action: str,
    target=None,
    *,
    changes: dict | None = None,
    merchant_id: int | None = None,
    source: str | None = None,
    device=None,
) -> None:
    """Write one audit row. `merchant_id` defaults to the target's merchant (or the target itself);
    `device` names the machine that acted when no token says so (a machine registering has none yet)."""
    if merchant_id is None:
        merchant_id = merchant_id_of(target)
    who = who_is_acting()
    if source:
        who["source"] = source
    if device is not None:
        who["device_id"] = device.pk
    OperationLog.objects.create(
        action=action,
        merchant_id=merchant_id,
        changes=scrub(changes or {}),
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        **who,
    )


def record_admin_entry(sender, instance, created, **kwargs) -> None:
    """Mirror Django's admin LogEntry into the audit trail: the one hook every admin page goes through,
    including third-party ones (celery-beat schedules, import-export imports)."""
    if not created:
        return
    model = instance.content_type.model_class() if instance.content_type_id else None
    target = model._default_manager.filter(pk=instance.object_id).first() if model is not None else None
    who = who_is_acting()
    who.setdefault("actor", instance.user)
    if who["source"] == Source.SYSTEM:
        who["source"] = Source.ADMIN
    OperationLog.objects.create(
        action=ADMIN_ACTIONS.get(instance.action_flag, "admin.changed"),
        merchant_id=merchant_id_of(target),
        target_type=model._meta.label_lower if model is not None else "",
        target_id=str(instance.object_id or ""),
        target_repr=instance.object_repr[:200],
        changes={"message": str(instance.get_change_message())},
        **who,
    )
