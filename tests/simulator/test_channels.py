"""How machines collect their commands besides heartbeats: pulling, and a WebSocket held open and
reconnected with a capped backoff."""

import asyncio
import itertools
import json

from simulator import CommandChannel
from tests.simulator.fakes import FakeServer, commanded_machine, fake_client, settle


async def test_a_pulling_machine_collects_its_commands_by_pull_before_its_heartbeat_can():
    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client, channel=CommandChannel.PULL)
        server.send(machine.device_id, "unlock", {})
        await machine.tick(session)
        await settle(machine)

    assert [channel for _, _, channel in server.deliveries] == ["pull"]
    assert session.stats.commands_via_pull == 1 and session.stats.pulls_sent == 1


async def test_a_machine_on_the_websocket_takes_pushed_commands_and_reconnects_after_a_drop():
    from websockets.asyncio.server import serve

    server = FakeServer()
    seen_headers, connections = [], []

    async def machine_socket(socket):
        seen_headers.append((socket.request.path, socket.request.headers.get("Authorization")))
        connections.append(socket)
        if len(connections) == 1:
            command = server.send("1", "set_params", {"params": {"pushed": True}})
            server.pending["1"].remove(command)
            await socket.send(json.dumps({"type": "command", "command": command}))
            await socket.send("not json")
            await asyncio.sleep(0.1)
            await socket.close()  # the server restarts: the machine must come back
            return
        await socket.wait_closed()

    async with serve(machine_socket, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        stop = asyncio.Event()

        async def stop_when_reconnected():
            while len(connections) < 2:
                await asyncio.sleep(0.02)
            stop.set()

        watcher = asyncio.create_task(stop_when_reconnected())
        async with fake_client(server) as client:
            machine, session = await commanded_machine(server, client, channel=CommandChannel.WEBSOCKET)
            session.socket_url = f"ws://127.0.0.1:{port}"
            socket_task = asyncio.create_task(machine.hold_socket(session))
            await asyncio.wait_for(watcher, timeout=10)
            await settle(machine)
            socket_task.cancel()  # as the fleet does when it stops
            await asyncio.gather(socket_task, return_exceptions=True)

    assert seen_headers[0] == ("/ws/devices/1/", f"Device {machine.token}")
    assert machine.params == {"pushed": True}
    assert session.stats.commands_via_websocket == 1
    assert [body["status"] for _, _, body in server.results] == ["accepted", "succeeded"], "results over HTTP"
    assert session.stats.websocket_connections == 2 and session.stats.websocket_drops >= 1


async def test_socket_backoff_grows_while_the_server_refuses_and_is_capped():
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    def refuse(url, **options):
        attempts.append(loop.time())
        raise ConnectionRefusedError("down")

    server = FakeServer()
    async with fake_client(server) as client:
        machine, session = await commanded_machine(server, client, channel=CommandChannel.WEBSOCKET)
        session.connect_socket = refuse
        task = asyncio.create_task(machine.hold_socket(session))
        await asyncio.sleep(2.0)
        session.stopping.set()
        await asyncio.wait_for(task, timeout=5)

    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert 2 <= len(attempts) <= 4, "about 0.5-1 s, then 1-2 s: no tight loop"
    assert all(gap >= 0.45 for gap in gaps)
