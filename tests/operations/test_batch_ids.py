"""A batch naming a machine, location or merchant id that no 64-bit key can hold is a 400 naming the
field that creates nothing, never a 500 (SQLite cannot compare such a number; found by schemathesis,
tests/e2e/test_fuzz_api.py)."""

import pytest

from accounts.models import Role
from operations.models import CommandBatch, RemoteCommand, TaskJob
from tests.factories import DeviceFactory
from tests.operations.batches import worker_at_commit

pytestmark = pytest.mark.django_db

CLEAN = {"type": "clean", "payload": {"program": "rinse"}}


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ({"device_ids": [-227607072557900447537430528]}, "device_ids.0"),
        ({"device_ids": ["DEVICE", 2**63]}, "device_ids.1"),
        ({"filter": {"location": 10**30}}, "filter.location"),
        ({"filter": {"merchant_id": -(2**70)}}, "filter.merchant_id"),
    ],
)
def test_an_id_no_key_can_hold_is_a_400_and_no_batch(staff_client, merchant, target, field, expect_api_error):
    machine = DeviceFactory(merchant=merchant)
    if "device_ids" in target:
        target = {"device_ids": [machine.pk if v == "DEVICE" else v for v in target["device_ids"]]}
    with worker_at_commit():
        reply = staff_client(Role.OPS, [merchant]).post(
            "/api/v1/commands/batches", {**CLEAN, **target}, format="json"
        )
    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == [field], error
    assert not CommandBatch.objects.exists()
    assert not TaskJob.objects.exists()
    assert not RemoteCommand.objects.exists()
