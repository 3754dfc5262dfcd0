"""A command's parameters or options, and a machine's command result, holding NUL (which PostgreSQL
cannot store) are a 400 naming the key that changes nothing, never a 500 on saving."""

import json

import pytest

from accounts.models import Role
from operations.models import CommandBatch, CommandStatus, RemoteCommand
from operations.services import commands

pytestmark = pytest.mark.django_db


def post_json(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


@pytest.fixture
def ops(staff_client, merchant):
    return staff_client(Role.OPS, [merchant])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (lambda t: {"params": {"brew_temp": t}}, "payload.params.brew_temp"),
        (lambda t: {"params": {"brew": {t: 1}}}, "payload.params.brew"),  # a key: its object
    ],
)
def test_a_command_whose_parameters_hold_nul_is_a_400_and_not_sent(
    ops, registered, payload, field, expect_api_error
):
    body = {"type": "set_params", "payload": payload("a\x00b")}
    reply = post_json(ops, f"/api/v1/devices/{registered.device.pk}/commands", body)
    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == [field], error
    assert not RemoteCommand.objects.exists()


def test_a_batch_whose_product_options_hold_nul_is_a_400_and_no_batch(ops, registered, expect_api_error):
    body = {
        "type": "make_product",
        "payload": {"product_id": "latte", "options": {"size": "l\x00"}},
        "device_ids": [registered.device.pk],
    }
    error = expect_api_error(post_json(ops, "/api/v1/commands/batches", body), 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["payload.options.size"], error
    assert not CommandBatch.objects.exists()


def test_a_result_holding_nul_is_a_400_and_the_command_stays_as_it_was(machine, expect_api_error):
    command = commands.send_command(machine.device, "restart", {"reason": "test"})
    reply = post_json(
        machine,
        f"/api/v1/devices/{machine.device.pk}/commands/{command.pk}/result",
        {"status": "succeeded", "result": {"log": ["ok", "\x00"]}},
    )
    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["result.log.1"], error
    command.refresh_from_db()
    assert command.status == CommandStatus.PENDING
    assert command.result == {}
