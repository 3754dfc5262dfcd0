"""Staged rollouts of a recipe package: who is offered it when, and what their installs decide.

A rollout's machines are split into stages when it starts (a canary, then waves) and only compatible
machines are taken (their model among the package's, their firmware at least its minimum). Offering a
stage gives each of its machines the package as its one desired package (an older offer to the same
machine is superseded: a machine that was offline through two assignments gets only the latest), and
an upgrade command if the operator asked for one. The heartbeat reply carries the offer
(`desired_package_for`, one Redis read); a machine that reports the package's version has installed
it, an upgrade command that failed or an offer not taken within `PACKAGE_INSTALL_TIMEOUT_S` has
failed. `advance_rollouts` (a periodic job, safe to run twice) turns those into stage decisions.
"""

import json
import math
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from audit import services as audit
from coffeeshop.exceptions import Conflict, Invalid
from coffeeshop.live import broadcast_after_commit
from coffeeshop.redis import (
    REDIS_OUTAGE_ERRORS,
    delete_matching,
    get_redis,
    key,
    outage_tolerated,
    redis_failed,
)
from devices.models import Device
from operations.models import CommandStatus, CommandType
from operations.services.commands import send_command
from recipes.models import RecipePackage, Rollout, RolloutMachine, RolloutStage

MachineStatus = RolloutMachine.Status
COMMAND_GAVE_UP = (
    CommandStatus.FAILED,
    CommandStatus.TIMED_OUT,
    CommandStatus.EXPIRED,
    CommandStatus.CANCELED,
)


def _field_error(field: str, message: str) -> Invalid:
    return Invalid(message, details={"fields": {field: [message]}})


# --- What a machine is offered ----------------------------------------------------------------------------


def desired_key(device_id: int) -> str:
    return key("pkg", "desired", device_id)


def package_url(device_id: int, package: RecipePackage) -> str:
    return f"/api/v1/devices/{device_id}/packages/{package.pk}"


def offer_payload(device_id: int, package: RecipePackage) -> dict:
    """`desired_package` as the heartbeat reply carries it (protocol: Heartbeat)."""
    return {
        "package_id": str(package.pk),
        "version": package.version,
        "url": package_url(device_id, package),
        "sha256": package.sha256,
        "size": package.size,
    }


def _offered(device_id: int) -> RolloutMachine | None:
    return (
        RolloutMachine.objects.filter(device_id=device_id, status=MachineStatus.OFFERED)
        .select_related("rollout__package")
        .first()
    )


def desired_package_for(device_id: int) -> dict | None:
    """The package the machine should run, or None: from Redis when it answers (one GET, kept in step
    with every offer), else from the database."""
    redis = get_redis()
    if redis is not None:
        try:
            raw = redis.get(desired_key(device_id))
        except REDIS_OUTAGE_ERRORS as error:
            redis_failed(error)
        else:
            return json.loads(raw) if raw else None
    offer = _offered(device_id)
    return offer_payload(device_id, offer.rollout.package) if offer else None


def _publish_offers(offers: dict[int, dict | None]) -> None:
    """After the transaction commits: each machine's offer (None: none any more) where heartbeats read it."""
    redis = get_redis()
    if redis is None or not offers:
        return

    def write():
        with outage_tolerated():  # missed: `republish_offers` rewrites them all when Redis answers again
            pipe = redis.pipeline(transaction=False)
            for device_id, payload in offers.items():
                if payload is None:
                    pipe.delete(desired_key(device_id))
                else:
                    pipe.set(desired_key(device_id), json.dumps(payload))
            pipe.execute()

    transaction.on_commit(write)


def republish_offers(redis) -> None:
    """A recovery hook: offers made or withdrawn while Redis was out are written again from the database."""
    delete_matching(redis, desired_key("*"))
    offers = RolloutMachine.objects.filter(status=MachineStatus.OFFERED).select_related("rollout__package")
    pipe = redis.pipeline(transaction=False)
    for offer in offers:
        pipe.set(
            desired_key(offer.device_id), json.dumps(offer_payload(offer.device_id, offer.rollout.package))
        )
    pipe.execute()


def machine_reports_package(device_id: int, package_version: str | None, offer: dict | None) -> dict | None:
    """A heartbeat's `package_version` against its offer: the offered version means installed (and the
    reply offers nothing more). Returns what the reply's `desired_package` should be."""
    if offer is None or not package_version or package_version != offer["version"]:
        return offer
    with transaction.atomic():
        machine = (
            RolloutMachine.objects.select_for_update()
            .filter(
                device_id=device_id, status=MachineStatus.OFFERED, rollout__package__version=package_version
            )
            .first()
        )
        if machine is not None:
            _finish(machine, MachineStatus.INSTALLED)
            _changed(machine.rollout)
        _publish_offers({device_id: None})
    return None


def _changed(rollout: Rollout) -> None:
    """Rollout pages follow their progress live (live.js refreshes on `rollout.updated`)."""
    broadcast_after_commit(rollout.merchant_id, "rollout.updated", {"id": rollout.pk})


def _finish(machine: RolloutMachine, status: str, error: str = "", now: datetime | None = None) -> None:
    machine.status, machine.error, machine.finished_at = status, error[:255], now or timezone.now()
    machine.save(update_fields=["status", "error", "finished_at"])


# --- Starting a rollout ---------------------------------------------------------------------------------


def _version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in version.split("."))


def is_compatible(device: Device, package: RecipePackage) -> bool:
    """A package is only for the models it names and, if it says, from a firmware on."""
    if device.model not in package.machine_models:
        return False
    if not package.min_firmware:
        return True
    try:
        return _version_key(device.firmware or "0") >= _version_key(package.min_firmware)
    except TypeError:  # a firmware string that does not compare: not offered
        return False


def stage_sizes(total: int, canary: dict, wave: dict | None) -> list[int]:
    """How many machines each stage takes: `{"count": n}` or `{"percent": p}` for the canary and for
    each wave after it (no wave: the rest in one)."""

    def size(spec: dict, field: str) -> int:
        if set(spec) == {"count"} and isinstance(spec["count"], int) and spec["count"] >= 1:
            return spec["count"]
        if (
            set(spec) == {"percent"}
            and isinstance(spec["percent"], (int, float))
            and 0 < spec["percent"] <= 100
        ):
            return max(1, math.ceil(total * spec["percent"] / 100))
        raise _field_error(field, _('Say {"count": n} (1 or more) or {"percent": p} (over 0, at most 100).'))

    sizes = [min(total, size(canary, "canary"))]
    step = size(wave, "wave") if wave else total
    while sum(sizes) < total:
        sizes.append(min(step, total - sum(sizes)))
    return sizes


@transaction.atomic
def start_rollout(
    *,
    package: RecipePackage,
    devices,
    user=None,
    canary: dict,
    wave: dict | None = None,
    success_threshold_pct: int = 90,
    failure_threshold_pct: int = 20,
    auto_advance: bool = True,
    send_upgrade_command: bool = False,
    rollback_of: Rollout | None = None,
    now: datetime | None = None,
) -> Rollout:
    """Roll `package` out to the compatible machines among `devices` (already scoped to the user): the
    canary is offered at once."""
    now = now or timezone.now()
    if not package.is_ready:
        raise _field_error("package_id", _("The package is not built yet."))
    for name, value in (
        ("success_threshold_pct", success_threshold_pct),
        ("failure_threshold_pct", failure_threshold_pct),
    ):
        if not 1 <= value <= 100:
            raise _field_error(name, _("A threshold is a percentage from 1 to 100."))
    machines = [
        d for d in devices.filter(merchant_id=package.merchant_id).order_by("pk") if is_compatible(d, package)
    ]
    if not machines:
        raise _field_error("devices", _("None of these machines can take this package (model or firmware)."))
    sizes = stage_sizes(len(machines), canary, wave)
    rollout = Rollout.objects.create(
        merchant_id=package.merchant_id,
        package=package,
        previous_package=_previous_package(package, machines),
        rollback_of=rollback_of,
        send_upgrade_command=send_upgrade_command,
        success_threshold_pct=success_threshold_pct,
        failure_threshold_pct=failure_threshold_pct,
        auto_advance=auto_advance,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        created_at=now,
    )
    stages = RolloutStage.objects.bulk_create(
        RolloutStage(rollout=rollout, index=i) for i in range(len(sizes))
    )
    rows, start = [], 0
    for stage, count in zip(stages, sizes, strict=True):
        rows += [
            RolloutMachine(rollout=rollout, stage=stage, device=d, previous_version=d.package_version)
            for d in machines[start : start + count]
        ]
        start += count
    RolloutMachine.objects.bulk_create(rows)
    audit.record(
        "rollout.started",
        rollout,
        changes={"package": package.version, "machines": len(machines), "stages": sizes},
    )
    _offer_stage(stages[0], now)
    return rollout


def _previous_package(package: RecipePackage, machines) -> RecipePackage | None:
    """What most of the machines ran before: the package a rollback takes them back to."""
    versions = Counter(
        d.package_version for d in machines if d.package_version and d.package_version != package.version
    )
    for version, _count in versions.most_common():
        found = RecipePackage.objects.filter(
            merchant_id=package.merchant_id, version=version, status=RecipePackage.Status.READY
        ).first()
        if found is not None:
            return found
    return None


def _offer_stage(stage: RolloutStage, now: datetime) -> None:
    """Offer the stage's waiting machines the package, superseding any other offer they hold."""
    rollout = stage.rollout
    machines = list(
        stage.machines.filter(status__in=[MachineStatus.PENDING, MachineStatus.WITHDRAWN]).select_related(
            "device"
        )
    )
    device_ids = [m.device_id for m in machines]
    RolloutMachine.objects.filter(device_id__in=device_ids, status=MachineStatus.OFFERED).exclude(
        rollout=rollout
    ).update(status=MachineStatus.SUPERSEDED, finished_at=now)
    for machine in machines:
        machine.status, machine.offered_at, machine.error = MachineStatus.OFFERED, now, ""
        if rollout.send_upgrade_command:
            payload = offer_payload(machine.device_id, rollout.package)
            # One attempt: a failed install is the rollout's to judge (a halt, then resume offers again).
            machine.command = send_command(
                machine.device,
                CommandType.UPGRADE,
                {k: payload[k] for k in ("package_id", "version", "url", "sha256")},
                max_attempts=1,
            )
    RolloutMachine.objects.bulk_update(machines, ["status", "offered_at", "error", "command"])
    stage.status, stage.started_at = RolloutStage.Status.ACTIVE, stage.started_at or now
    stage.save(update_fields=["status", "started_at"])
    _changed(rollout)
    _publish_offers({m.device_id: offer_payload(m.device_id, rollout.package) for m in machines})


def _withdraw(rollout: Rollout, statuses, now: datetime) -> None:
    withdrawn = rollout.machines.filter(status__in=statuses)
    offered = list(withdrawn.filter(status=MachineStatus.OFFERED).values_list("device_id", flat=True))
    withdrawn.update(status=MachineStatus.WITHDRAWN, finished_at=now)
    _publish_offers(dict.fromkeys(offered))


# --- Deciding: the periodic job --------------------------------------------------------------------------


def stage_counts(stage: RolloutStage) -> dict[str, int]:
    counts = dict(stage.machines.values_list("status").annotate(n=Count("pk")))
    return {status: counts.get(status, 0) for status in MachineStatus.values} | {
        "total": sum(counts.values())
    }


def _settle_machines(rollout: Rollout, now: datetime) -> None:
    """Offers that ended without a heartbeat saying so: a command that succeeded (installed), gave up
    (failed), or an offer left untaken past the install timeout (failed)."""
    offered = rollout.machines.filter(status=MachineStatus.OFFERED)
    offered.filter(command__status=CommandStatus.SUCCEEDED).update(
        status=MachineStatus.INSTALLED, finished_at=now
    )
    for machine in offered.filter(command__status__in=COMMAND_GAVE_UP).select_related("command"):
        _finish(machine, MachineStatus.FAILED, machine.command.error or machine.command.status, now)
    timeout = now - timedelta(seconds=settings.PACKAGE_INSTALL_TIMEOUT_S)
    offered.filter(offered_at__lt=timeout).update(
        status=MachineStatus.FAILED, finished_at=now, error=_("not installed in time")
    )
    settled = rollout.machines.filter(
        status__in=[MachineStatus.INSTALLED, MachineStatus.FAILED], finished_at=now
    )
    _publish_offers(dict.fromkeys(settled.values_list("device_id", flat=True)))


def _decide(rollout: Rollout, now: datetime) -> None:
    stage = rollout.stages.filter(status=RolloutStage.Status.ACTIVE).order_by("index").first()
    if stage is None:
        return
    counts = stage_counts(stage)
    total = counts["total"] or 1
    if counts[MachineStatus.FAILED] * 100 >= rollout.failure_threshold_pct * total:
        stage.status, stage.finished_at = RolloutStage.Status.HALTED, now
        stage.save(update_fields=["status", "finished_at"])
        rollout.status = Rollout.Status.HALTED
        rollout.halted_reason = _("%(failed)d of %(total)d machines of %(stage)s failed to install") % {
            "failed": counts[MachineStatus.FAILED], "total": counts["total"], "stage": stage,
        }  # fmt: skip
        rollout.save(update_fields=["status", "halted_reason"])
        _withdraw(rollout, [MachineStatus.OFFERED], now)
        audit.record("rollout.halted", rollout, changes={"stage": stage.index, **counts})
        return
    if counts[MachineStatus.INSTALLED] * 100 < rollout.success_threshold_pct * total:
        return
    stage.status, stage.finished_at = RolloutStage.Status.SUCCEEDED, now
    stage.save(update_fields=["status", "finished_at"])
    following = rollout.stages.filter(index__gt=stage.index).order_by("index").first()
    if following is None:
        rollout.status, rollout.finished_at = Rollout.Status.COMPLETED, now
        rollout.save(update_fields=["status", "finished_at"])
        audit.record("rollout.completed", rollout)
    elif rollout.auto_advance:
        _offer_stage(following, now)
    else:
        rollout.status = Rollout.Status.AWAITING_APPROVAL
        rollout.save(update_fields=["status"])


def advance_rollouts(now: datetime | None = None) -> dict:
    """Settle offers and decide every running rollout's stage, one rollout per transaction (locked: a
    second run at the same time skips it)."""
    now = now or timezone.now()
    decided = 0
    for rollout_id in Rollout.objects.filter(status=Rollout.Status.RUNNING).values_list("pk", flat=True):
        with transaction.atomic():
            rollout = (
                Rollout.objects.select_for_update(skip_locked=True)
                .filter(pk=rollout_id, status=Rollout.Status.RUNNING)
                .select_related("package")
                .first()
            )
            if rollout is None:
                continue
            _settle_machines(rollout, now)
            _decide(rollout, now)
            _changed(rollout)
            decided += 1
    return {"rollouts": decided}


# --- What operators do ---------------------------------------------------------------------------------


def _locked(rollout: Rollout) -> Rollout:
    return Rollout.objects.select_for_update().select_related("package").get(pk=rollout.pk)


def _refuse(rollout: Rollout, action: str) -> Conflict:
    return Conflict(
        _("A rollout that is %(status)s cannot be %(action)s.")
        % {"status": rollout.get_status_display().lower(), "action": action}
    )


@transaction.atomic
def approve_next_stage(rollout: Rollout, user=None, now: datetime | None = None) -> Rollout:
    now = now or timezone.now()
    rollout = _locked(rollout)
    if rollout.status != Rollout.Status.AWAITING_APPROVAL:
        raise _refuse(rollout, _("approved"))
    following = rollout.stages.filter(status=RolloutStage.Status.WAITING).order_by("index").first()
    following.approved_by = user if getattr(user, "is_authenticated", False) else None
    following.save(update_fields=["approved_by"])
    rollout.status = Rollout.Status.RUNNING
    rollout.save(update_fields=["status"])
    _offer_stage(following, now)
    audit.record("rollout.approved", rollout, changes={"stage": following.index})
    return rollout


@transaction.atomic
def pause_rollout(rollout: Rollout) -> Rollout:
    rollout = _locked(rollout)
    if rollout.status not in Rollout.ACTIVE:
        raise _refuse(rollout, _("paused"))
    rollout.status = Rollout.Status.PAUSED
    rollout.save(update_fields=["status"])
    audit.record("rollout.paused", rollout)
    _changed(rollout)
    return rollout


@transaction.atomic
def resume_rollout(rollout: Rollout, now: datetime | None = None) -> Rollout:
    """Go on after a pause, or after a halt once the cause is fixed: the halted stage is offered again."""
    now = now or timezone.now()
    rollout = _locked(rollout)
    if rollout.status not in (Rollout.Status.PAUSED, Rollout.Status.HALTED):
        raise _refuse(rollout, _("resumed"))
    halted = rollout.stages.filter(status=RolloutStage.Status.HALTED).first()
    rollout.status, rollout.halted_reason = Rollout.Status.RUNNING, ""
    rollout.save(update_fields=["status", "halted_reason"])
    if halted is not None:
        rollout.machines.filter(stage=halted, status=MachineStatus.FAILED).update(
            status=MachineStatus.WITHDRAWN
        )
        _offer_stage(halted, now)
    audit.record("rollout.resumed", rollout)
    _changed(rollout)
    return rollout


@transaction.atomic
def abort_rollout(rollout: Rollout, now: datetime | None = None) -> Rollout:
    """Stop for good: offers not yet taken are withdrawn; machines that installed keep the package."""
    now = now or timezone.now()
    rollout = _locked(rollout)
    if rollout.status in Rollout.FINISHED:
        raise _refuse(rollout, _("aborted"))
    _withdraw(rollout, [MachineStatus.OFFERED, MachineStatus.PENDING], now)
    rollout.stages.filter(status__in=[RolloutStage.Status.WAITING, RolloutStage.Status.ACTIVE]).update(
        status=RolloutStage.Status.ABORTED, finished_at=now
    )
    rollout.status, rollout.finished_at = Rollout.Status.ABORTED, now
    rollout.save(update_fields=["status", "finished_at"])
    audit.record("rollout.aborted", rollout)
    _changed(rollout)
    return rollout


def roll_back(rollout: Rollout, user=None, now: datetime | None = None) -> Rollout:
    """The previous package, all at once, to the machines that took this one (this one is aborted)."""
    now = now or timezone.now()
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.previous_package is None:
            raise Conflict(_("There is no previous package to roll back to."))
        took = Device.objects.filter(
            rollouts__rollout=rollout, rollouts__status=MachineStatus.INSTALLED
        ).distinct()
        if not took.exists():
            raise Conflict(_("No machine installed this package: there is nothing to roll back."))
        if rollout.status not in Rollout.FINISHED:
            abort_rollout(rollout, now)
        back = start_rollout(
            package=rollout.previous_package,
            devices=took,
            user=user,
            canary={"percent": 100},
            failure_threshold_pct=100,
            success_threshold_pct=rollout.success_threshold_pct,
            send_upgrade_command=rollout.send_upgrade_command,
            rollback_of=rollout,
            now=now,
        )
        audit.record("rollout.rolled_back", rollout, changes={"rollback": back.pk})
    return back


def progress_of(rollout_ids) -> dict[int, list[dict]]:
    """Each rollout's stages with their machines by status, for a page of rollouts in one query."""
    counts = (
        RolloutMachine.objects.filter(rollout_id__in=rollout_ids)
        .values("rollout_id", "stage__index", "stage__status", "status")
        .annotate(n=Count("pk"))
    )
    stages: dict[int, dict[int, dict]] = {rollout_id: {} for rollout_id in rollout_ids}
    for row in counts:
        stage = stages[row["rollout_id"]].setdefault(
            row["stage__index"],
            {"index": row["stage__index"], "status": row["stage__status"], "total": 0}
            | dict.fromkeys(MachineStatus.values, 0),
        )
        stage[row["status"]] += row["n"]
        stage["total"] += row["n"]
    return {rollout_id: [by_index[i] for i in sorted(by_index)] for rollout_id, by_index in stages.items()}
