"""The `serve` process: uvicorn (httptools + uvloop) running the ingest app behind the
connection guard of bridge/connections.py, and a shutdown that answers every request whose
bytes reached the server, including connections still waiting in the listen backlog."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import resource
import socket
from typing import Any

import uvicorn

from bridge.config import Settings
from bridge.connections import Limits, protocol_class
from bridge.logs import fields

log = logging.getLogger("convo_bridge.ingest")

FD_RESERVE = 64  # descriptors kept for Redis, logs and the rest of the process


def limits(settings: Settings) -> Limits:
    """The [ingest] limits, `max_connections` lowered to fit the open-file limit."""
    wanted = settings.ingest.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    usable = wanted if soft == resource.RLIM_INFINITY else max(1, soft - FD_RESERVE)
    if usable < wanted:
        log.warning(
            "max_connections lowered to fit the open-file limit",
            extra=fields(max_connections=usable, configured=wanted, open_file_limit=soft),
        )
    return Limits(
        max_header_bytes=settings.ingest.max_header_bytes,
        head_timeout_s=settings.ingest.head_timeout_s,
        keep_alive_s=settings.ingest.keep_alive_s,
        max_connections=min(wanted, usable),
    )


class DrainingServer(uvicorn.Server):
    """On shutdown, connections the kernel has accepted but uvicorn has not yet taken (the
    listen backlog) are taken and answered like the others instead of being reset."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        listeners = [
            socket.socket(fileno=os.dup(s.fileno()))
            for server in self.servers
            for s in server.sockets or ()
        ]
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        factory = functools.partial(
            self.config.http_protocol_class,  # as uvicorn's own create_protocol calls it
            config=self.config,  # type: ignore[call-arg]
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        for listener in listeners:
            listener.setblocking(False)
            for _ in range(self.config.backlog):  # what is waiting, not a flood to come
                try:
                    conn, _ = listener.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                await loop.connect_accepted_socket(factory, conn)
            listener.close()
        await super().shutdown(sockets)
        # here, not after run(): uvicorn re-raises the SIGTERM it caught once it is done
        log.info("serve stopped", extra=fields(url=self.url))

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Says where it listens once the socket is bound (uvicorn's own line is INFO, below
        the warning level it runs at)."""
        await super().startup(sockets)
        if self.started:
            log.info(
                "serve listening", extra=fields(url=self.url, webhooks=f"{self.url}/webhooks/")
            )


def _warn_if_redis_is_away(redis_url: str) -> None:
    """serve starts without Redis (webhooks are answered 503 until it is back, so senders
    retry), but says so at once instead of at the first webhook."""
    from redis.exceptions import RedisError

    from bridge.store.connect import sync_client

    conn = sync_client(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        conn.ping()
    except (RedisError, OSError) as exc:
        log.warning(
            "Redis unreachable at start: webhooks are answered 503 until it is back; "
            "check REDIS_URL",
            extra=fields(error=type(exc).__name__),
        )
    finally:
        conn.close()


def serve(settings: Settings, host: str, port: int, **options: Any) -> None:
    from bridge.app import build_app

    config = uvicorn.Config(
        build_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http=protocol_class(limits(settings)),
        log_level="warning",
        access_log=False,
        log_config=None,  # uvicorn's records go through bridge.logs like every other line
        timeout_graceful_shutdown=15,
        timeout_keep_alive=settings.ingest.keep_alive_s,  # type: ignore[arg-type]  # a float works
        **options,
    )
    _warn_if_redis_is_away(settings.redis_url)
    DrainingServer(config).run()
