"""The audit trail's recorder: `record(action, target, changes)` from any service.

Who acted is not a parameter: services take plain values, not requests. The request (set by
`AuditContextMiddleware`) or an explicit `acting_as(...)` block says who, from where: a staff user in
the admin or the API, a machine through its token, or the system (periodic jobs). DRF writes the user
it authenticated back onto the Django request, so a token-authenticated caller is known here too.
"""

import contextlib
import logging
from contextvars import ContextVar

from django.apps import apps

logger = logging.getLogger(__name__)
_request: ContextVar = ContextVar("audit_request", default=None)
_system_actor: ContextVar = ContextVar("audit_system_actor", default=None)
SENSITIVE = ("password", "token", "secret")


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


@contextlib.contextmanager
def acting_as(source: str, user=None):
    """For work outside a request (Celery, management commands): record under this source and user."""
    token = _system_actor.set((source, user))
    try:
        yield
    finally:
        _system_actor.reset(token)


def _who() -> dict:
    request = _request.get()
    if request is None:
        source, user = _system_actor.get() or ("system", None)
        return {"source": source, "actor": user if getattr(user, "pk", None) else None}
    user = getattr(request, "user", None)
    identity = getattr(user, "identity", None)
    ip = request.META.get("REMOTE_ADDR") or None
    if identity is not None:
        return {"source": "machine", "device_id": identity.device_id, "ip_address": ip}
    source = "admin" if request.path.startswith("/admin/") else "api"
    actor = user if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) else None
    return {"source": source, "actor": actor, "ip_address": ip}


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
    OperationLog = apps.get_model("operations", "OperationLog")
    if merchant_id is None and target is not None:
        merchant_id = getattr(target, "merchant_id", None)
        if merchant_id is None and target._meta.label == "accounts.Merchant":
            merchant_id = target.pk
    who = _who()
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


ADMIN_ACTIONS = {1: "admin.added", 2: "admin.changed", 3: "admin.deleted"}


def record_admin_entry(sender, instance, created, **kwargs) -> None:
    """Mirror Django's admin LogEntry into the audit trail: the one hook every admin page goes through,
    including third-party ones (celery-beat schedules, import-export imports)."""
    if not created:
        return
    OperationLog = apps.get_model("operations", "OperationLog")
    model = instance.content_type.model_class() if instance.content_type_id else None
    target = model._default_manager.filter(pk=instance.object_id).first() if model is not None else None
    merchant_id = getattr(target, "merchant_id", None)
    if target is not None and merchant_id is None and target._meta.label == "accounts.Merchant":
        merchant_id = target.pk
    who = _who()
    who.setdefault("actor", instance.user)
    if who["source"] == "system":
        who["source"] = "admin"
    OperationLog.objects.create(
        action=ADMIN_ACTIONS.get(instance.action_flag, "admin.changed"),
        merchant_id=merchant_id,
        target_type=model._meta.label_lower if model is not None else "",
        target_id=str(instance.object_id or ""),
        target_repr=instance.object_repr[:200],
        changes={"message": str(instance.get_change_message())},
        **who,
    )
