"""The rollout the recipes issue asks for, end to end with the simulated fleet over HTTP: a package built
from published recipes reaches every compatible machine (and no other) through heartbeat replies; the
next one's canary halts by itself when a machine fails its install; the rollback takes the machines
that took it back to the first package. The periodic job runs here as beat would run it."""

import asyncio

import pytest

from accounts.models import Role
from devices.models import Device
from recipes.models import RecipePackage, Rollout, RolloutMachine
from recipes.services import rollouts
from recipes.services.packages import build_package, start_package_build
from simulator import run_fleet
from tests.e2e.conftest import in_thread
from tests.factories import RecipeFactory, RecipeVersionFactory, UserFactory, merchant_with_catalogue

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MODELS = ["CM-2000", "CM-3000"]  # the simulator's third model, EspressoPro, is never offered these


def built(merchant, user, version: str, price: str):
    recipe = RecipeFactory(merchant=merchant, product_id=f"latte-{version}", name="Latte", price=price)
    published = RecipeVersionFactory(recipe=recipe, status="published")
    package = start_package_build(
        merchant=merchant,
        version=version,
        machine_models=MODELS,
        recipe_version_ids=[published.pk],
        user=user,
        enqueue=lambda job_id: None,
    )
    build_package(package.job_id)
    package.refresh_from_db()
    assert package.is_ready
    return package


async def wait_until(check, what: str, timeout_s: float = 60):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await in_thread(check):
        if loop.time() > deadline:
            machines = RolloutMachine.objects.values_list(
                "rollout_id", "device__serial", "status", "command__status"
            )
            raise AssertionError(f"timed out waiting for {what}: {await in_thread(list, machines)}")
        await asyncio.sleep(0.5)


def statuses(rollout_id) -> dict[str, str]:
    return dict(RolloutMachine.objects.filter(rollout_id=rollout_id).values_list("device__serial", "status"))


async def test_a_canary_halts_on_a_failed_install_and_the_rollback_takes_the_machines_back(
    live_asgi_server, settings
):
    settings.MEDIA_ROOT = live_asgi_server.data_dir / "media"  # built here, downloaded from the server
    merchant = await in_thread(merchant_with_catalogue, name="Rollout Coffee")
    ops = await in_thread(UserFactory, role=Role.OPS, merchants=[merchant])
    first = await in_thread(built, merchant, ops, "2026.12.1", "18.00")
    second = await in_thread(built, merchant, ops, "2026.12.2", "19.00")
    stop = asyncio.Event()
    fleet = asyncio.create_task(
        run_fleet(
            live_asgi_server.url,
            merchant.provisioning_secret,
            devices=5,  # models: CM-2000, CM-3000, EspressoPro, CM-2000, CM-3000
            heartbeat_interval_s=0.5,
            offline_probability=0,
            serial_prefix="RO",
            seed=5,
            command_time_scale=0.2,
            misbehaving_serials={"RO-000004": ["fail_installs"]},
            stop=stop,
        )
    )
    try:
        await wait_until(
            lambda: Device.objects.filter(merchant=merchant).count() == 5, "the machines to register"
        )

        def start(package, serials, **options):
            devices = Device.objects.filter(merchant=merchant, serial__in=serials)
            return rollouts.start_rollout(package=package, devices=devices, user=ops, **options).pk

        everyone = await in_thread(
            start, first, ["RO-000001", "RO-000002", "RO-000003"], canary={"percent": 100}
        )
        await wait_until(
            lambda: set(statuses(everyone).values()) == {RolloutMachine.Status.INSTALLED}, "the first package"
        )
        assert set(await in_thread(statuses, everyone)) == {"RO-000001", "RO-000002"}  # never the EspressoPro

        canary = await in_thread(
            start,
            second,
            ["RO-000001", "RO-000002", "RO-000003", "RO-000004", "RO-000005"],
            canary={"count": 4},  # the four machines it supports
            failure_threshold_pct=25,
            send_upgrade_command=True,
        )
        await wait_until(
            lambda: (
                list(statuses(canary).values()).count(RolloutMachine.Status.INSTALLED) == 3
                and RolloutMachine.objects.filter(
                    rollout_id=canary, device__serial="RO-000004", command__status="failed"
                ).exists()
            ),
            "the canary's installs",
        )
        await in_thread(rollouts.advance_rollouts)
        halted = await in_thread(Rollout.objects.get, pk=canary)
        assert halted.status == Rollout.Status.HALTED and "1 of 4" in halted.halted_reason
        assert "RO-000003" not in await in_thread(statuses, canary)  # an EspressoPro: never offered

        back = await in_thread(lambda: rollouts.roll_back(Rollout.objects.get(pk=canary), user=ops).pk)
        await wait_until(
            lambda: set(statuses(back).values()) == {RolloutMachine.Status.INSTALLED}, "the rollback"
        )
        await in_thread(rollouts.advance_rollouts)
    finally:
        stop.set()
        stats = await fleet

    versions = await in_thread(
        lambda: dict(Device.objects.filter(merchant=merchant).values_list("serial", "package_version"))
    )
    assert versions["RO-000001"] == versions["RO-000002"] == versions["RO-000005"] == first.version
    assert versions["RO-000003"] not in (first.version, second.version)  # never offered either
    assert versions["RO-000004"] != second.version
    assert stats.package_installs_failed >= 1
    rollback = await in_thread(Rollout.objects.select_related("package").get, pk=back)
    assert rollback.package == first and rollback.status == Rollout.Status.COMPLETED
    assert await in_thread(lambda: RecipePackage.objects.filter(merchant=merchant).count()) == 2
