"""Every decision about a rollout reaches the audit trail: started, approved, paused, resumed, halted,
completed, aborted and rolled back (here by the system; staff pages record their user the same way)."""

import pytest
from django.utils import timezone

from devices.models import Device
from recipes.models import RecipePackage, RolloutMachine
from recipes.services import rollouts
from tests.factories import DeviceFactory
from tests.operations.test_audit_coverage import assert_audited

pytestmark = pytest.mark.django_db(transaction=True)


def ready_package(merchant, version):
    return RecipePackage.objects.create(
        merchant=merchant, version=version, machine_models=["CM-2000"], status=RecipePackage.Status.READY,
        sha256="a" * 64, size=10, built_at=timezone.now(),
    )  # fmt: skip


def installed(rollout):
    RolloutMachine.objects.filter(rollout=rollout, status=RolloutMachine.Status.OFFERED).update(
        status=RolloutMachine.Status.INSTALLED, finished_at=timezone.now()
    )


def test_a_rollouts_decisions_are_recorded(merchant):
    old, new = ready_package(merchant, "1"), ready_package(merchant, "2")
    for n in range(4):
        DeviceFactory(merchant=merchant, package_version="1", serial=f"AU-{n}")
    rollout = rollouts.start_rollout(
        package=new, devices=Device.objects.all(), canary={"count": 1}, wave={"count": 1}, auto_advance=False
    )
    row = assert_audited(
        "rollout.started", rollout, source="system", changes={"machines": 4, "stages": [1, 1, 1, 1]}
    )
    assert row.merchant_id == merchant.pk

    installed(rollout)
    rollouts.advance_rollouts()
    rollouts.approve_next_stage(rollout)
    assert_audited("rollout.approved", rollout, source="system", changes={"stage": 1})
    rollouts.pause_rollout(rollout)
    assert_audited("rollout.paused", rollout, source="system")
    rollouts.resume_rollout(rollout)
    assert_audited("rollout.resumed", rollout, source="system")
    RolloutMachine.objects.filter(rollout=rollout, status=RolloutMachine.Status.OFFERED).update(
        status=RolloutMachine.Status.FAILED
    )
    rollouts.advance_rollouts()
    assert_audited("rollout.halted", rollout, source="system", changes={"stage": 1})

    back = rollouts.roll_back(rollout)
    assert_audited("rollout.aborted", rollout, source="system")
    assert_audited("rollout.rolled_back", rollout, source="system", changes={"rollback": back.pk})
    installed(back)
    rollouts.advance_rollouts()
    assert_audited("rollout.completed", back, source="system")
    assert back.package == old
