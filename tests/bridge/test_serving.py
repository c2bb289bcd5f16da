"""The `serve` process's shutdown: connections still in the listen backlog when the server
stops accepting are taken and answered, not reset."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from bridge.app import build_app
from bridge.config import Settings
from bridge.connections import protocol_class
from bridge.serving import DrainingServer, limits
from tests.bridge.test_serve_shutdown import signed_request
from tests.servers import free_port


class BusyAtShutdown(DrainingServer):
    """Busy (blocked) for a second as it begins to shut down: meanwhile connections can only
    wait in the listen backlog."""

    blocked = threading.Event()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.blocked.set()
        time.sleep(1.0)
        await super().shutdown(sockets)


def test_connections_in_the_listen_backlog_at_shutdown_are_answered(settings: Settings) -> None:
    port = free_port()
    config = uvicorn.Config(
        build_app(settings),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=protocol_class(limits(settings)),
        log_level="warning",
        lifespan="on",
    )
    server = BusyAtShutdown(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve()), daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.01)
    server.should_exit = True
    assert server.blocked.wait(5)
    socks = []
    for i in range(5):  # the kernel accepts these; the server cannot until it wakes
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(signed_request(port, f"backlog-{i}"))
        socks.append(sock)
    answers = []
    for sock in socks:
        try:
            answers.append(sock.recv(4096).split(b"\r\n", 1)[0].decode())
        except OSError as exc:
            answers.append(type(exc).__name__)
        sock.close()
    thread.join(20)
    assert answers == ["HTTP/1.1 202 Accepted"] * 5, answers
