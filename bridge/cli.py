"""`convo-bridge`: thin entry point; each command calls into the modules that do the work.

Errors print one line to stderr and exit non-zero (2 for configuration), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from redis.exceptions import RedisError

from bridge.config import Settings, load_settings, require_worker_token
from bridge.errors import BridgeError, ConfigError, NotFound, PayloadError
from bridge.intents import check_id, check_segment_id
from bridge.openapi import VERSION
from bridge.store import Store
from bridge.times import iso, since_ms

USAGE = """\
convo-bridge receives webhooks from helpdesks and CRMs, queues each change in Redis, and
PATCHes it into the Convocore conversation it belongs to.

Run it:        serve (the webhook endpoint) and one or more worker (the delivery)
Try it:        dev starts Redis, a Convocore sandbox, serve and a worker on this machine
Look inside:   status, trace AGENT_ID CONVO_ID, dlq list / show / replay, links
Check setup:   config check
Move Redis:    migrate --from OLD_URL (onto REDIS_URL, or another [redis] shards)

`convo-bridge COMMAND --help` describes a command and the environment it reads."""

T = TypeVar("T")


# Commands that only read and write Redis: no webhook secret or Convocore token needed.
REDIS_ONLY = ("status", "dlq", "links", "trace", "events", "fields", "migrate")


def _store_supported(settings: Settings) -> None:
    """Redis Cluster needs RQ on a Redis of its own (RQ_REDIS_URL), which cannot be a
    cluster: refused here, before serve, worker or a store command starts (exit 2)."""
    from bridge.store.connect import require_store_support

    require_store_support(settings.redis_url, rq_url=settings.rq_redis_url)
    if settings.rq_redis_url:
        require_store_support(settings.rq_redis_url, "RQ_REDIS_URL")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, secrets=args.cmd not in REDIS_ONLY)
    _store_supported(settings)
    from bridge.logs import configure

    configure(settings.log)
    return settings


def _with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = Store(settings.redis_url, durability=settings.redis, rq_url=settings.rq_url)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


# --- commands -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from bridge.app import serve

    serve(_settings(args), args.host, args.port)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from workers.rq_worker import run_worker

    settings = _settings(args)
    require_worker_token(settings)
    port = _metrics_port(args.metrics_port)
    # A burst worker with Redis away says so in one line and exits 1; a long-running one
    # waits for Redis, retrying, as it does after a Redis restart.
    if args.burst:
        _ping(settings.redis_url)
    if port:
        from bridge.metrics import serve_worker_metrics

        try:
            serve_worker_metrics(port, args.metrics_host)
        except OSError as exc:
            raise ConfigError("--metrics-port", f"cannot serve metrics on {port}: {exc}") from None
    run_worker(settings, burst=args.burst)
    return 0


def _metrics_port(flag: int | None) -> int | None:
    """--metrics-port, else BRIDGE_METRICS_PORT; a bad value names where it came from."""
    where, raw = ("--metrics-port", str(flag)) if flag is not None else ("BRIDGE_METRICS_PORT", "")
    raw = raw or os.environ.get("BRIDGE_METRICS_PORT", "")
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(where, f"expected a port number (1-65535), got {raw!r}")
    return int(raw)


def _ping(redis_url: str) -> None:
    from bridge.store.connect import sync_client

    conn = sync_client(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        conn.ping()
    finally:
        conn.close()


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bridge.local import sandbox

    sandbox.run(
        args.host,
        args.port,
        fail_rate=args.fail_rate,
        latency_ms=args.latency_ms,
        retry_after=args.retry_after,
        auto_create=args.auto_create,
    )
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from bridge.local.dev import run_dev

    return run_dev(args)


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    _store_supported(settings)
    if args.role in ("all", "worker"):
        require_worker_token(settings)
    names = ", ".join(f"{n} ({s.kind})" for n, s in settings.sources.items()) or "none"
    target = settings.convocore.base_url + (" (sandbox)" if settings.convocore.sandbox else "")
    print(
        f"config ok for {args.role}: {settings.path or 'defaults'}; sources: {names}; convocore: {target}"
    )
    from bridge.store.server_check import durability_warnings

    for warning in durability_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bridge.status import gated_accounts, status_report

    settings = _settings(args)
    accounts = gated_accounts(settings.convocore)
    report = _with_store(settings, lambda store: status_report(store, accounts))
    if args.json:
        _print_json(report.to_json())
        return 0
    c = report.circuit
    rates = report.to_json()["last_minute"]
    alive = "unknown" if report.workers_alive is None else report.workers_alive
    lines = [
        f"queue depth        {report.queue_depth} conversations "
        f"({report.conversations_waiting} ready, {report.in_flight} in flight, "
        f"{report.scheduled_retries} scheduled)",
        f"next scheduled     {iso(report.next_retry_at)}",
        f"dead letters       {report.dead_letters} "
        + " ".join(f"{k}={v}" for k, v in report.dead_letters_by_reason.items()),
        f"circuit            {c.state}" + (f" until {iso(c.until_ms)}" if c.until_ms else ""),
        *(
            f"circuit {name:<10} {a.state}" + (f" until {iso(a.until_ms)}" if a.until_ms else "")
            for name, a in sorted(report.accounts.items())
        ),
        f"workers alive      {alive}",
        "delivery           " + _paused(report.delivery_paused),
        "last minute        " + " ".join(f"{k}={v}" for k, v in rates.items()),
    ]
    print("\n".join(lines))
    return 0


def _paused(paused: bool | None) -> str:
    if paused is None:
        return "unknown (RQ could not be read)"
    if paused:
        return "PAUSED (`rq suspend` or the admin page's Pause; `rq resume` or Resume resumes)"
    return "running"


def cmd_dlq(args: argparse.Namespace) -> int:
    settings = _settings(args)
    coalesce = settings.delivery.coalesce_ms
    if args.dlq_cmd == "list":
        letters = _chosen_letters(args, _with_store(settings, lambda s: s.dead_letters(100_000)))
        if args.json:
            _print_json([d.summary() for d in letters])
        elif not letters:
            print("no dead letters")
        else:
            for d in letters:
                s = d.summary()
                where = (
                    f"{s['agent_id']}/{s['convo_id']}"
                    if s["agent_id"]
                    else f"{s['source']}:{s['external_id']}"
                )
                print(
                    f"{s['id']}  {s['reason']:<14} {where}  changes={s['changes']} "
                    f"attempts={s['attempts']}  {s['last_answer'][:60]}"
                )
        return 0
    if args.dlq_cmd == "show":
        from bridge.readable import dead_letter_text

        letter = _with_store(settings, lambda s: s.dead_letter(args.id))
        if args.json:
            _print_json(letter.to_json())
        else:
            print(dead_letter_text(letter))
        return 0
    ids = list(args.ids)
    if args.all == bool(ids):
        raise PayloadError(f"dlq {args.dlq_cmd}: give dead-letter ids or --all (not both)")

    async def chosen(store: Store) -> list[str]:
        return await store.dead_letter_ids(1_000_000) if args.all else ids

    if args.dlq_cmd == "replay" and args.all:
        from bridge.store.keys import RQ_QUEUE
        from bridge.store.rq_jobs import enqueue_replay_at, rq_durability

        job = enqueue_replay_at(
            settings.rq_url, None, coalesce, "every dead letter", rq_durability(settings)
        )
        print(
            f"replaying every dead letter in RQ job {job.id} on queue {RQ_QUEUE} "
            "(a worker runs it; follow it with `rq info` or rq-dashboard)"
        )
        return 0
    if args.dlq_cmd == "replay":

        async def replay(store: Store) -> dict[str, str]:
            return await store.replay(await chosen(store), coalesce_ms=coalesce)

        result = _with_store(settings, replay)
        for dl_id, outcome in result.items():
            print(f"{dl_id}: {outcome}")
        missing = [i for i, o in result.items() if o == "missing"]
        if missing:
            raise NotFound(f"no dead letter {', '.join(missing)}")
        return 0

    async def purge(store: Store) -> int:
        return await store.purge(await chosen(store))

    n = _with_store(settings, purge)
    print(f"purged {n}")
    if not args.all and n < len(ids):
        raise NotFound("some ids were not dead letters (see `convo-bridge dlq list`)")
    return 0


def _chosen_letters(args: argparse.Namespace, letters: list[Any]) -> list[Any]:
    """`dlq list --reason R --source S --since T`: each filter given narrows the list."""
    since = since_ms(args.since) if args.since else None
    return [
        d
        for d in letters
        if (args.reason is None or d.reason == args.reason)
        and (args.source is None or args.source in d.summary()["source"].split(","))
        and (since is None or (d.created_ms or 0) >= since)
    ]


def cmd_trace(args: argparse.Namespace) -> int:
    from bridge.trace import render, trace

    settings = _settings(args)
    agent, convo = check_id(args.agent_id, "AGENT_ID"), check_id(args.convo_id, "CONVO_ID")
    found = _with_store(settings, lambda s: trace(s, agent, convo))
    if args.json:
        _print_json(found.to_json())
    else:
        print(render(found))
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    from bridge.fields import check_field, clear_applied, future_applied, render

    settings = _settings(args)
    agent, convo = check_id(args.agent_id, "AGENT_ID"), check_id(args.convo_id, "CONVO_ID")
    if args.fields_cmd == "future":
        found = _with_store(settings, lambda s: future_applied(s, agent, convo))
        if args.json:
            _print_json(found.to_json())
        else:
            print(render(found))
        return 0
    if (args.field is None) == (not args.future):
        raise PayloadError("give one FIELD, or --future for every value dated in the future")
    name = None if args.future else check_field(args.field)
    dropped = _with_store(settings, lambda s: clear_applied(s, agent, convo, name))
    if args.json:
        _print_json({"cleared": dropped})
    elif dropped:
        print(f"cleared {', '.join(dropped)}: the next event for them wins")
    else:
        print("nothing to clear")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from bridge.eventlog import query_from, render, search

    settings = _settings(args)
    options = {
        "source": args.source,
        "convo": args.convo,
        "external_id": args.external_id,
        "event_id": args.event_id,
        "verdict": args.verdict,
        "status": args.status,
        "kind": args.kind,
        "since": args.since,
        "limit": str(args.limit),
    }
    query = query_from({k: v for k, v in options.items() if v is not None})
    found = _with_store(settings, lambda s: search(s, query))
    if args.json:
        _print_json([e.to_json() for e in found])
    else:
        print(render(found))
    return 0


def cmd_links(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.links_cmd == "list":
        rows = _with_store(settings, lambda s: s.links(settings.sources))
        if args.json:
            _print_json(rows)
            return 0
        for row in rows:
            print(f"{row['source']}  {row['external_id']}  ->  {row['agent_id']} {row['convo_id']}")
        if not rows:
            print("no links")
        return 0
    if args.source not in settings.sources:
        raise ConfigError(f"sources.{args.source}", "no such source in the config")
    try:  # a bad argument is a usage error (exit 2), like argparse's own
        ext = check_id(args.external_id, "EXTERNAL_ID")
        if args.links_cmd == "set":
            agent = check_segment_id(args.agent_id, "AGENT_ID")
            convo = check_segment_id(args.convo_id, "CONVO_ID")
    except PayloadError as exc:
        print(f"convo-bridge: {exc.detail}", file=sys.stderr)
        return 2
    if args.links_cmd == "set":
        from bridge.store.rq_jobs import link

        res = _with_store(
            settings,
            lambda s: link(
                s, args.source, ext, agent, convo, coalesce_ms=settings.delivery.coalesce_ms
            ),
        )
        done = {"replayed": " (waiting events replayed)"}.get(res, "")
        if res.startswith("queued "):
            done = f" (waiting events replay in RQ job {res.split()[1]} on queue convo-bridge)"
        print(f"linked {args.source} {ext} -> {agent} {convo}{done}")
    elif args.links_cmd == "get":
        agent, convo = _with_store(settings, lambda s: s.get_link(args.source, ext))
        print(f"{agent} {convo}")
    else:
        if not _with_store(settings, lambda s: s.delete_link(args.source, ext)):
            raise NotFound(f"no link for {args.source} {ext!r}")
        print("deleted")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """The queue, links and dedup keys of the store at --from, into REDIS_URL's layout."""
    from bridge.config import RedisSettings
    from bridge.store.connect import parse_redis_url
    from bridge.store.move import move, source_shards

    settings = _settings(args)
    if args.source_url == settings.redis_url:
        raise ConfigError("--from", "is REDIS_URL itself: name the Redis to move from")
    parse_redis_url(args.source_url, "--from")

    async def run() -> list[str]:
        count = await source_shards(args.source_url, settings.rq_url)
        source = Store(
            args.source_url, durability=RedisSettings(shards=count), rq_url=settings.rq_url
        )
        target = Store(
            settings.redis_url, durability=settings.redis, rq_url=settings.rq_url, migrating=True
        )
        try:
            quiet_ms = int(settings.delivery.in_doubt_quiet_s * 1000)
            return (await move(source, target, quiet_ms=quiet_ms)).lines()
        finally:
            await source.close()
            await target.close()

    for line in asyncio.run(run()):
        print(line)
    print("the source is left as it was: point every serve and worker at REDIS_URL now")
    return 0


# --- parser -------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convo-bridge",
        description=USAGE,
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="the ingest HTTP server")
    s.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    s.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default: %(default)s)"
    )
    s.set_defaults(fn=cmd_serve)

    w = sub.add_parser("worker", help="a delivery worker")
    w.add_argument("--burst", action="store_true", help="exit when nothing is left to do")
    w.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve this worker's Prometheus metrics on this port (or BRIDGE_METRICS_PORT)",
    )
    w.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    w.set_defaults(fn=cmd_worker)

    d = sub.add_parser("dev", help="Redis, sandbox, ingest and a worker on this machine")
    d.add_argument("--port", type=int, default=8080, help="ingest port (default: %(default)s)")
    d.add_argument(
        "--sandbox-port", type=int, default=8081, help="sandbox port (default: %(default)s)"
    )
    d.add_argument(
        "--dir",
        default=None,
        help="where dev keeps its config, secrets and Redis data (default: "
        "$XDG_STATE_HOME/convo-bridge/dev, i.e. ~/.local/state/convo-bridge/dev)",
    )
    d.set_defaults(fn=cmd_dev)

    b = sub.add_parser("sandbox", help="a local stand-in for the Convocore API")
    b.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    b.add_argument(
        "--port", type=int, default=8081, help="port to listen on (default: %(default)s)"
    )
    b.add_argument(
        "--fail-rate", type=float, default=0.0, help="share of PATCHes answered 503 (0 to 1)"
    )
    b.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay before every answer, milliseconds"
    )
    b.add_argument(
        "--retry-after", type=float, default=None, help="Retry-After seconds on injected failures"
    )
    b.add_argument(
        "--auto-create",
        action="store_true",
        help="create unknown conversations on first PATCH instead of 404",
    )
    b.set_defaults(fn=cmd_sandbox)

    q = sub.add_parser("dlq", help="dead letters")
    qs = q.add_subparsers(dest="dlq_cmd", required=True)
    ql = qs.add_parser("list", help="every dead letter: id, reason, conversation, last answer")
    ql.add_argument("--json", action="store_true", help="print a JSON array")
    ql.add_argument("--reason", help="only this reason, e.g. max_attempts, unroutable")
    ql.add_argument("--source", help="only dead letters with events from this source")
    ql.add_argument(
        "--since", help="only those dead-lettered since: a span (30m, 2h, 7d) or an ISO time"
    )
    qsh = qs.add_parser("show", help="one dead letter's events and attempts")
    qsh.add_argument("id", help="dead-letter id (from dlq list)")
    qsh.add_argument("--json", action="store_true", help="print JSON")
    for name, does in (("replay", "merge back through newest-wins"), ("purge", "drop")):
        x = qs.add_parser(name, help=f"{does}: the given dead letters or --all")
        x.add_argument("ids", nargs="*", help="dead-letter ids (from dlq list)")
        x.add_argument("--all", action="store_true", help="every dead letter")
    q.set_defaults(fn=cmd_dlq)

    lk = sub.add_parser("links", help="the link registry")
    ls = lk.add_subparsers(dest="links_cmd", required=True)
    what = {
        "source": "source name ([sources.NAME] in the config)",
        "external_id": "the sender's ticket or conversation id",
        "agent_id": "Convocore agent id",
        "convo_id": "Convocore conversation id",
    }
    x = ls.add_parser("set", help="route a ticket to a conversation; replays its waiting events")
    for a in ("source", "external_id", "agent_id", "convo_id"):
        x.add_argument(a, help=what[a])
    for name in ("get", "delete"):
        x = ls.add_parser(name, help=f"{name} one link")
        x.add_argument("source", help=what["source"])
        x.add_argument("external_id", help=what["external_id"])
    ls.add_parser("list", help="every link").add_argument(
        "--json", action="store_true", help="print a JSON array"
    )
    lk.set_defaults(fn=cmd_links)

    st = sub.add_parser("status", help="queue, retries, dead letters, circuit, workers")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(fn=cmd_status)

    tr = sub.add_parser(
        "trace",
        help="why a conversation did (not) update: pending changes, applied values and "
        "where they came from, attempts, dead letters, waiting / in flight / in doubt",
    )
    tr.add_argument("agent_id", help="the Convocore agent id")
    tr.add_argument("convo_id", help="the Convocore conversation id")
    tr.add_argument("--json", action="store_true", help="print JSON")
    tr.set_defaults(fn=cmd_trace)

    fl = sub.add_parser(
        "fields",
        help="applied values dated in the future (a sender's bad clock), and clearing them "
        "so the next event wins",
    )
    fs = fl.add_subparsers(dest="fields_cmd", required=True)
    fu = fs.add_parser("future", help="applied values of a conversation dated in the future")
    fc = fs.add_parser(
        "clear",
        help="forget when a field's applied value happened (FIELD, or --future for every one "
        "dated in the future), so the next event for it wins; the target is not touched",
    )
    for x in (fu, fc):
        x.add_argument("agent_id", help="the Convocore agent id")
        x.add_argument("convo_id", help="the Convocore conversation id")
    fc.add_argument(
        "field",
        nargs="?",
        help="a Convocore field name (title, tags, handoffHistory…) or a change name as "
        "trace shows it (f:title, t:vip)",
    )
    fc.add_argument("--future", action="store_true", help="every value dated in the future")
    for x in (fu, fc):
        x.add_argument("--json", action="store_true", help="print JSON")
    fl.set_defaults(fn=cmd_fields)

    ev = sub.add_parser(
        "events",
        help="the event log: each webhook request and each PATCH, newest first",
    )
    ev.add_argument("--source", help="only this source's requests (and PATCHes carrying them)")
    ev.add_argument("--convo", metavar="AGENT/CONVO", help="only this conversation")
    ev.add_argument("--external-id", help="only requests naming this sender's ticket id")
    ev.add_argument("--event-id", help="only this event: its request(s) and PATCHes")
    ev.add_argument(
        "--verdict",
        help="accepted, duplicate, ignored, refused, unroutable (requests); applied, retry, "
        "dead_lettered, released (PATCHes)",
    )
    ev.add_argument("--status", help="only this HTTP status (202, 401, 200, 503, no_answer…)")
    ev.add_argument("--kind", choices=("webhook", "patch"), help="only requests or PATCHes")
    ev.add_argument("--since", help="only newer than this: 15m, 2h, 1d, epoch ms or ISO 8601")
    ev.add_argument("--limit", type=int, default=50, help="at most this many (default: 50)")
    ev.add_argument("--json", action="store_true", help="print a JSON array")
    ev.set_defaults(fn=cmd_events)

    mg = sub.add_parser(
        "migrate",
        help="move the queue, links and dedup keys from another Redis (or shard count) into "
        "REDIS_URL's; serve and workers stopped",
    )
    mg.add_argument(
        "--from",
        dest="source_url",
        required=True,
        metavar="URL",
        help="the Redis the bridge ran on (redis://, rediss://, redis+sentinel://, "
        "redis+cluster://), read as the layout it was written with",
    )
    mg.set_defaults(fn=cmd_migrate)

    c = sub.add_parser("config", help="configuration")
    cs = c.add_subparsers(dest="config_cmd", required=True)
    ck = cs.add_parser("check", help="validate the file and environment; exit 2 naming the bad key")
    ck.add_argument(
        "--for",
        dest="role",
        choices=("all", "serve", "worker"),
        default="all",
        help="check what this command needs (serve needs no Convocore token; default: all)",
    )
    c.set_defaults(fn=cmd_config_check)
    _everywhere(p)
    return p


_REDIS = (
    "  REDIS_URL           Redis to use (default redis://127.0.0.1:6379/0)\n"
    "  RQ_REDIS_URL        RQ's Redis: workers, failed jobs, replay jobs (default REDIS_URL)\n"
)
_CONFIG = "  BRIDGE_CONFIG       config file when --config is not given (none: built-in defaults)\n"
_LOG = "  BRIDGE_LOG_LEVEL, BRIDGE_LOG_FORMAT override [log] level and format\n"
_ADMIN = "  BRIDGE_ADMIN_TOKEN  bearer token of the /admin routes (unset: they answer 404)\n"
_SECRETS = "  each [sources.X] secret_env names the variable holding that sender's secret\n"
_CONVOCORE = (
    "  CONVOCORE_API_TOKEN the Convocore token (the variable [convocore] token_env names)\n"
    "  CONVOCORE_BASE_URL, CONVOCORE_SANDBOX override [convocore] base_url and sandbox\n"
    "  each [convocore.accounts.X] token_env names the variable holding that account's token\n"
)
_MULTIPROC = (
    "  PROMETHEUS_MULTIPROC_DIR  a shared empty directory: /metrics adds up its processes\n"
)
_DEV_LINE = "`convo-bridge dev` prints an `export ...` line that points these at what it started."
_REDIS_ONLY_ENV = _REDIS + _CONFIG + _LOG + "  (no webhook secret or Convocore token needed)\n"
ENVIRONMENT = (
    "environment:\n" + _REDIS + _CONFIG + _ADMIN + _SECRETS + _CONVOCORE + _LOG + _DEV_LINE
)
# What each command reads; a command not named here reads Redis and the config only.
COMMAND_ENVIRONMENT = {
    "serve": _REDIS + _CONFIG + _ADMIN + _SECRETS + _LOG + _MULTIPROC,
    "worker": _REDIS
    + _CONFIG
    + _CONVOCORE
    + "  BRIDGE_METRICS_PORT serve this worker's /metrics on this port (as --metrics-port)\n"
    + _MULTIPROC
    + _LOG,
    "dev": _REDIS.replace("Redis to use (default", "an existing Redis (unset: dev starts one;")
    + "  CONVOCORE_API_TOKEN set: deliver to CONVOCORE_BASE_URL instead of a sandbox\n"
    + "  XDG_STATE_HOME      where the default --dir lives\n",
    "sandbox": "  (none)\n",
    "config": ENVIRONMENT.removeprefix("environment:\n").removesuffix(_DEV_LINE),
}
CONFIG_HELP = "config file (default: $BRIDGE_CONFIG); may also follow the command"


def _everywhere(parser: argparse.ArgumentParser, command: str | None = None) -> None:
    """Every command takes --config after its name too, and shows the environment."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                child.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
                if command is None:  # a top-level command: its own environment
                    child.epilog = "environment:\n" + COMMAND_ENVIRONMENT.get(name, _REDIS_ONLY_ENV)
                else:
                    child.epilog = parser.epilog
                child.formatter_class = argparse.RawDescriptionHelpFormatter
                _everywhere(child, command or name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = int(args.fn(args))
    except ConfigError as exc:
        print(f"convo-bridge: {exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"convo-bridge: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(
            f"convo-bridge: Redis unreachable ({type(exc).__name__}); check REDIS_URL",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
