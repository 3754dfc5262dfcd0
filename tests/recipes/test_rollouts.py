"""Staged rollouts through the machine protocol: offers in heartbeat replies, installs reported by
`package_version`, failed upgrade commands, stages that advance, halt, pause, abort and roll back."""

import pytest
from django.utils import timezone

from devices.models import Device
from operations.models import RemoteCommand
from recipes.models import RecipePackage, Rollout, RolloutMachine, RolloutStage
from recipes.services import rollouts
from tests.factories import DeviceFactory

# Transactional: offers reach Redis when their transaction commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)
MachineStatus = RolloutMachine.Status


def package(merchant, version, models=("CM-2000",), min_firmware=""):
    return RecipePackage.objects.create(
        merchant=merchant,
        version=version,
        machine_models=list(models),
        min_firmware=min_firmware,
        status=RecipePackage.Status.READY,
        sha256=f"{abs(hash(version)):064x}"[:64],
        size=1234,
        built_at=timezone.now(),
    )


@pytest.fixture
def old(merchant):
    return package(merchant, "2026.11.1")


@pytest.fixture
def new(merchant):
    return package(merchant, "2026.11.2", models=("CM-2000",), min_firmware="1.4")


@pytest.fixture
def fleet(merchant, machine_client, old):
    """Ten compatible machines running the old package, one of another model, one with old firmware."""
    machines = [
        machine_client(DeviceFactory(merchant=merchant, serial=f"RO-{n:02d}", package_version=old.version))
        for n in range(10)
    ]
    other_model = machine_client(DeviceFactory(merchant=merchant, serial="RO-X", model="CM-9000"))
    old_firmware = machine_client(DeviceFactory(merchant=merchant, serial="RO-F", firmware="1.2.9"))
    return {"machines": machines, "other_model": other_model, "old_firmware": old_firmware}


def heartbeat(client, **fields):
    reply = client.post(
        f"/api/v1/devices/{client.device.pk}/status", {"state": "idle", **fields}, format="json"
    )
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]


def start(new, **options):
    defaults = {"canary": {"count": 2}, "wave": {"count": 4}}
    return rollouts.start_rollout(package=new, devices=Device.objects.all(), **{**defaults, **options})


def statuses(rollout):
    return dict(rollout.machines.values_list("device__serial", "status"))


def test_the_canary_is_offered_in_heartbeat_replies_and_incompatible_machines_never(fleet, new, old):
    rollout = start(new)

    assert [s.index for s in rollout.stages.all()] == [0, 1, 2]
    assert rollout.previous_package == old
    offered = heartbeat(fleet["machines"][0])["desired_package"]
    assert offered == {
        "package_id": str(new.pk),
        "version": "2026.11.2",
        "url": f"/api/v1/devices/{fleet['machines'][0].device.pk}/packages/{new.pk}",
        "sha256": new.sha256,
        "size": 1234,
    }
    assert heartbeat(fleet["machines"][0])["desired_package"] == offered  # again: still not installed
    assert heartbeat(fleet["machines"][5])["desired_package"] is None  # a later wave
    assert heartbeat(fleet["other_model"])["desired_package"] is None
    assert heartbeat(fleet["old_firmware"])["desired_package"] is None
    assert set(statuses(rollout)) == {f"RO-{n:02d}" for n in range(10)}


def test_installs_reported_in_heartbeats_advance_the_stages_to_completion(fleet, new):
    rollout = start(new)
    for stage_machines in (fleet["machines"][:2], fleet["machines"][2:6], fleet["machines"][6:]):
        for client in stage_machines:
            assert heartbeat(client)["desired_package"]["version"] == new.version
            assert heartbeat(client, package_version=new.version)["desired_package"] is None
        rollouts.advance_rollouts()

    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.COMPLETED
    assert set(statuses(rollout).values()) == {MachineStatus.INSTALLED}
    assert [s.status for s in rollout.stages.all()] == [RolloutStage.Status.SUCCEEDED] * 3


def test_a_stage_waits_for_its_success_threshold(fleet, new):
    rollout = start(new, canary={"count": 4}, success_threshold_pct=75)
    for client in fleet["machines"][:2]:
        heartbeat(client, package_version=new.version)
    rollouts.advance_rollouts()
    assert heartbeat(fleet["machines"][4])["desired_package"] is None  # 2 of 4 is not 75 %

    heartbeat(fleet["machines"][2], package_version=new.version)
    rollouts.advance_rollouts()

    assert heartbeat(fleet["machines"][4])["desired_package"]["version"] == new.version
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING


def test_failed_upgrades_halt_the_rollout_by_themselves_and_withdraw_its_offers(fleet, new):
    rollout = start(new, canary={"count": 4}, failure_threshold_pct=50, send_upgrade_command=True)
    canary = fleet["machines"][:4]
    for client in canary[:2]:
        (command,) = heartbeat(client)["commands"]
        assert command["type"] == "upgrade" and command["payload"]["version"] == new.version
        reply = client.post(
            f"/api/v1/devices/{client.device.pk}/commands/{command['command_id']}/result",
            {"status": "failed", "error": "sha256 mismatch"},
            format="json",
        )
        assert reply.status_code == 200, reply.content

    rollouts.advance_rollouts()

    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.HALTED
    assert "2 of 4" in rollout.halted_reason
    assert statuses(rollout)["RO-00"] == MachineStatus.FAILED
    assert RolloutMachine.objects.get(rollout=rollout, device=canary[0].device).error == "sha256 mismatch"
    assert heartbeat(canary[3])["desired_package"] is None  # withdrawn
    assert heartbeat(fleet["machines"][6])["desired_package"] is None  # never offered


def test_an_offline_machine_gets_only_the_latest_assignment(merchant, fleet, new):
    newer = package(merchant, "2026.11.3")
    first = start(new, canary={"percent": 100})
    second = start(newer, canary={"percent": 100})

    assert heartbeat(fleet["machines"][0])["desired_package"]["version"] == newer.version
    assert set(statuses(first).values()) == {MachineStatus.SUPERSEDED}
    assert set(statuses(second).values()) == {MachineStatus.OFFERED}


def test_rollback_rolls_the_previous_package_out_to_the_machines_that_took_the_new_one(fleet, new, old):
    rollout = start(new)
    for client in fleet["machines"][:2]:
        heartbeat(client, package_version=new.version)

    back = rollouts.roll_back(rollout)

    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.ABORTED
    assert back.package == old and back.rollback_of == rollout
    assert set(statuses(back)) == {"RO-00", "RO-01"}
    assert heartbeat(fleet["machines"][0])["desired_package"]["version"] == old.version
    assert heartbeat(fleet["machines"][1], package_version=old.version)["desired_package"] is None
    assert heartbeat(fleet["machines"][2])["desired_package"] is None  # the new one's offer was withdrawn


def test_approval_pause_resume_and_abort(fleet, new):
    rollout = start(new, auto_advance=False)
    for client in fleet["machines"][:2]:
        heartbeat(client, package_version=new.version)
    rollouts.advance_rollouts()
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.AWAITING_APPROVAL
    assert heartbeat(fleet["machines"][2])["desired_package"] is None

    rollouts.approve_next_stage(rollout)
    assert heartbeat(fleet["machines"][2])["desired_package"]["version"] == new.version
    rollouts.pause_rollout(rollout)
    with pytest.raises(rollouts.Conflict):
        rollouts.pause_rollout(rollout)
    rollouts.resume_rollout(rollout)
    rollouts.abort_rollout(rollout)

    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.ABORTED
    assert heartbeat(fleet["machines"][2])["desired_package"] is None
    assert statuses(rollout)["RO-00"] == MachineStatus.INSTALLED  # what was installed stays
    assert statuses(rollout)["RO-09"] == MachineStatus.WITHDRAWN


def test_an_offer_never_taken_fails_after_the_install_timeout(fleet, new, settings):
    rollout = start(new, canary={"count": 2}, failure_threshold_pct=100)
    settings.PACKAGE_INSTALL_TIMEOUT_S = 60

    rollouts.advance_rollouts(now=timezone.now() + timezone.timedelta(seconds=61))

    assert set(rollout.machines.filter(stage__index=0).values_list("status", flat=True)) == {
        MachineStatus.FAILED
    }
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.HALTED


def test_a_package_not_built_or_no_compatible_machine_is_refused(merchant, fleet, new):
    building = RecipePackage.objects.create(
        merchant=merchant, version="2026.12.1", machine_models=["CM-2000"]
    )
    with pytest.raises(rollouts.Invalid):
        rollouts.start_rollout(package=building, devices=Device.objects.all(), canary={"count": 1})
    with pytest.raises(rollouts.Invalid):
        rollouts.start_rollout(
            package=new, devices=Device.objects.filter(model="CM-9000"), canary={"count": 1}
        )
    with pytest.raises(rollouts.Invalid):
        start(new, canary={"count": 0})
    assert not Rollout.objects.exists()


def test_offers_written_while_redis_was_out_reach_heartbeats_after_recovery(fleet, new, settings):
    from coffeeshop.redis import redis_client

    if not settings.REDIS_URL:
        pytest.skip(reason="the offers' Redis copy")
    rollout = start(new)
    client = redis_client()
    client.delete(rollouts.desired_key(fleet["machines"][0].device.pk))  # as if the write had been lost
    client.set(rollouts.desired_key(fleet["machines"][5].device.pk), '{"version": "stale"}')

    rollouts.republish_offers(client)

    assert heartbeat(fleet["machines"][0])["desired_package"]["version"] == new.version
    assert heartbeat(fleet["machines"][5])["desired_package"] is None
    assert RemoteCommand.objects.count() == 0
    assert rollout.machines.filter(status=MachineStatus.OFFERED).count() == 2
