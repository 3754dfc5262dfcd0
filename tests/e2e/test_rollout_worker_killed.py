"""The rollouts' periodic job SIGKILLed midway loses no decision and makes none twice: the next run
(as beat sends it) advances every rollout whose canary installed, each wave machine getting exactly
one upgrade command. Real worker processes, real Redis."""

import os
import secrets
import signal

import pytest
from django.db.models import Count
from django.utils import timezone

from devices.models import Device
from operations.models import CommandType, RemoteCommand
from recipes.models import RecipePackage, Rollout, RolloutMachine, RolloutStage
from recipes.services import rollouts
from recipes.tasks import advance_rollouts
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for
from tests.factories import DeviceFactory, MerchantFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROLLOUTS, MACHINES_EACH = 120, 3


def test_rollouts_whose_worker_is_killed_are_advanced_once_by_the_next_run(django_db_blocker, tmp_path):
    merchant = MerchantFactory(name="Killed rollouts")
    devices = Device.objects.bulk_create(
        DeviceFactory.build_batch(ROLLOUTS * MACHINES_EACH, merchant=merchant)
    )
    for n in range(ROLLOUTS):
        package = RecipePackage.objects.create(
            merchant=merchant, version=f"2026.{n}", machine_models=["CM-2000"],
            status=RecipePackage.Status.READY, sha256="b" * 64, size=100, built_at=timezone.now(),
        )  # fmt: skip
        ids = [d.pk for d in devices[n * MACHINES_EACH : (n + 1) * MACHINES_EACH]]
        rollouts.start_rollout(
            package=package,
            devices=Device.objects.filter(pk__in=ids),
            canary={"count": 1},
            send_upgrade_command=True,
        )
    RolloutMachine.objects.filter(status=RolloutMachine.Status.OFFERED).update(
        status=RolloutMachine.Status.INSTALLED, finished_at=timezone.now()
    )
    advanced = RolloutStage.objects.filter(index=1, status=RolloutStage.Status.ACTIVE)
    queue = f"e2e-rollout-kill-{os.getpid()}-{secrets.token_hex(3)}"

    with celery_worker(queue, django_db_blocker, tmp_path) as first:
        advance_rollouts.apply_async(queue=queue)
        wait_for(lambda: advanced.exists(), timeout_s=60, what="the first decisions", every_s=0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    assert 0 < advanced.count() < ROLLOUTS, "the worker was killed after every decision: no test"

    with celery_worker(queue, django_db_blocker, tmp_path):
        advance_rollouts.apply_async(queue=queue)  # the next run
        wait_for(lambda: advanced.count() == ROLLOUTS, timeout_s=120, what="the next run", every_s=0.2)

    upgrades = RemoteCommand.objects.filter(type=CommandType.UPGRADE)
    assert upgrades.count() == ROLLOUTS * MACHINES_EACH  # the canary's and each wave machine's, once
    assert not upgrades.values("device").annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert set(Rollout.objects.values_list("status", flat=True)) == {Rollout.Status.RUNNING}
