"""Every Redis key of convo-bridge, and the helpers that build their parts.

Keys (all under a shard's prefix, bridge/store/shards.py: `cb:` with one shard, `{cb}:` with
one shard on Redis Cluster, `{cb.<i>.<salt>}:` for shard i of several; each shard holds the
whole table, and which shard a key is in says shards.py; `ck` is a conversation key, see
`conversation_key`):

    seen:<source>:<event id>   string, SET NX EX dedup_window_s      once per event
    p:<ck>                     hash change name -> entry             pending changes (newest
                               r:<field> -> marker                   wins, coalescing); re-sends
                                                                     (in-doubt writes)
    hw:<ck>                    hash change name -> applied entry     high-water marks (newest wins),
                               _t last PATCH, _q quiet until,        the values a re-send needs
                               _dl dead letters, _rs re-send seq     (in-doubt writes); kept while
                                                                     _dl > 0 (dead letters);
                                                                     `fields clear` drops entries
    arr:<ck>                   string JSON {tags, handoffHistory}    arrays from the last answer
    att:<ck>                   list of attempt records (JSON)        attempts so far (retries,
                                                                     dead letters)
    due                        zset ck -> due time (ms)              ready and scheduled work
                                                                     (coalescing, retries)
    inflight                   zset ck -> lease expiry (ms)          work held by a worker (one
                                                                     at a time, crash recovery)
    lease:<ck>                 string token, PX lease_ms             one PATCH at a time
    wake                       list                                  nudges idle workers
    dlq                        zset dead-letter id -> time           dead letters, unroutable events
    dl:<id> / dle:<id> / dla:<id>  record hash / its changes / its attempts
    dlr                        hash reason -> count
    dlseq                      counter                               dead-letter ids
    rqnew                      list of dead-letter ids               waiting for their RQ failed job
    rqgone                     list of dead-letter ids               dropped: their failed job goes
                                                                     (RQ on a Redis of its own)
    ux:<source>:<external id>  string dead-letter id                 unroutable, waiting for a link
    links:<source>             hash external id -> ck                the link registry
    circuit / recent           hash state,until / list of 0|1        circuit breaker
    rl                         string: next allowed take time (ms)   rate_limit_per_s (GCRA)
    g:circuit / g:recent / g:rl                                      the same, shared by every
                                                                     shard, in shard 0, when
                                                                     sharded (lua/gate.lua)
    acct:<name>:circuit / :recent / :rl                              one account's own circuit
                               and rate limit ([convocore.accounts.NAME], lua/gate.lua)
    r:<what>:<10 s bucket>     counters                              recent rates for status
    events                     stream, XADD MAXLEN ~ max_events,     the event log: one entry per
                               XTRIM MINID ~ now - retention_s       webhook request and per PATCH
                               (at most once a second)
    dlh:<id>                   hash time (ms) -> what, EXPIRE        a dead letter's replays and
                               HISTORY_TTL_S                         what became of them
    rf:<ck>                    string JSON {id, events}, EX          the letter a conversation was
                               HISTORY_TTL_S                         last replayed from
    layout (one-shard prefix)  string: the shard count               written by a sharded store;
                                                                     another count is refused
    moving (one-shard prefix)  string: the source of a move          `convo-bridge migrate` under
                                                                     way onto this Redis: every
                                                                     other store refuses it
    m:<minute>                 hash, EXPIRE CHART_TTL_S              the page's charts: counts per
                               (epoch minute)                        minute, queue depth, dead letters
                                                                     (sampled on a PATCH's entry,
                                                                     else once a second: qs, tm)

Guarantees are named as in the README's Guarantees list. The Lua scripts (lua/*.lua) build
the same names from the prefix they are given; this table is the one place they are written
down.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

PREFIX = "cb:"
# On Redis Cluster every key carries one hash tag, so they share one slot (one primary at a
# time): every script and pipeline of the store stays inside it (bridge/store/cluster_map.py)
CLUSTER_PREFIX = "{cb}:"
RQ_QUEUE = "convo-bridge"  # RQ's side: the workers' queue, its FailedJobRegistry, replay jobs
# hw:<ck> expires this long after the conversation's last PATCH, unless it has dead letters:
# then it stays until they are replayed or purged (a replay must meet the newer values)
HIGH_WATER_TTL_MS = 30 * 86_400_000
EVENTS = "events"  # the event log stream ([eventlog] bounds it by count and by age)
HISTORY_TTL_S = 30 * 86_400  # dlh: (replay history) and rf: (replayed from) keys
CHART_TTL_S = 25 * 3600  # m:<minute> hashes: a day of charts (1,500 small hashes at most)
LATENCY_BUCKETS_MS = (2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
MOVING = "moving"  # under the one-shard prefix, while `convo-bridge migrate` writes here
LOG_ROW = "\x00log"  # marks an event-log row among the accept script's event rows


def on_cluster(url: str) -> bool:
    """Whether the Redis `url` names is a Redis Cluster."""
    return url.startswith("redis+cluster://")


def base_prefix(cluster: bool) -> str:
    """The one-shard layout's prefix (shard 0's when sharded holds the layout record)."""
    return CLUSTER_PREFIX if cluster else PREFIX


def prefix_for(url: str) -> str:
    """The store's key prefix on the Redis `url` names: CLUSTER_PREFIX on Redis Cluster."""
    return base_prefix(on_cluster(url))


def conversation_key(agent_id: str, convo_id: str) -> str:
    """`<agent>/<convo>`, each percent-encoded: safe as a key and as two URL path segments."""
    return f"{quote(agent_id, safe='')}/{quote(convo_id, safe='')}"


def split_key(ck: str) -> tuple[str, str]:
    agent, _, convo = ck.partition("/")
    return unquote(agent), unquote(convo)


def ext_key(external_id: str) -> str:
    """A sender's external id as a key segment."""
    return quote(external_id, safe="")


def key(prefix: str, *parts: str) -> str:
    return prefix + ":".join(parts)
