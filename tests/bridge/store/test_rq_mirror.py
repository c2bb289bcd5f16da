"""Every dead letter is a failed job of the `convo-bridge` queue: `rq info`, rq-dashboard and
`rq requeue` see what `dlq list` sees; requeueing replays through newest-wins; purging
removes the job; large replays run as RQ jobs. Real worker threads, a real Redis, the
sandbox, RQ's command line and rq-dashboard's server."""

import json
import subprocess
import sys
import time

import httpx
import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from bridge.store.keys import RQ_QUEUE
from tests.conftest import SECRET, convo, wait_until
from tests.servers import free_port, rq, spawn, stop
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(url, convo_id, title, at=T0, agent="a"):
    payload = {"agent_id": agent, "convo_id": convo_id, "occurred_at": at, "set": {"title": title}}
    body, headers = signed(SECRET, payload)
    answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


def failed_ids(conn):
    return sorted(FailedJobRegistry(RQ_QUEUE, connection=conn).get_job_ids())


def dead_ids(conn):
    return sorted(i.decode() for i in conn.zrange("cb:dlq", 0, -1))


def cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        capture_output=True,
        text=True,
        env={**env, "PATH": ""},
        timeout=60,
    )


@pytest.fixture
def conn(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def env(bridge_env, tmp_path, settings):
    import os

    return {**os.environ, **bridge_env, "BRIDGE_CONFIG": settings.path}


def make_dead_letters(ingest_url, sandbox_url, conn, n=1, start=0):
    """n conversations whose PATCH the target refuses with 422: n dead letters."""
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [422] * n})
    for i in range(start, start + n):
        send(ingest_url, f"c{i}", f"refused {i}")
    return wait_until(lambda: len(ids := dead_ids(conn)) == start + n and ids, timeout_s=15)


def test_a_dead_letter_is_a_failed_rq_job_with_its_reason_and_last_answer(
    start_worker, ingest_url, sandbox_url, conn, redis_url
):
    start_worker()
    [dl_id] = make_dead_letters(ingest_url, sandbox_url, conn)
    assert wait_until(lambda: failed_ids(conn), timeout_s=10) == [dl_id]
    job = Job.fetch(dl_id, connection=conn)
    text = job.latest_result().exc_string
    assert "DeadLetter: rejected_422" in text and "conversation: a/c0" in text
    assert "last status: 422" in text and f"rq requeue --queue {RQ_QUEUE} {dl_id}" in text
    assert job.get_status() == "failed" and job.origin == RQ_QUEUE
    assert "1 failed" in rq("info", "-Q", url=redis_url).stdout


def test_rq_dashboard_lists_the_dead_letter_and_the_worker(
    start_worker, ingest_url, sandbox_url, conn, redis_url
):
    start_worker()
    [dl_id] = make_dead_letters(ingest_url, sandbox_url, conn)
    wait_until(lambda: failed_ids(conn), timeout_s=10)
    port = free_port()
    dashboard = spawn(
        [sys.executable, "-m", "rq_dashboard", "--redis-url", redis_url, "-b", "127.0.0.1",
         "-p", str(port)],
        {},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/0/data"

        def jobs():
            try:
                return httpx.get(f"{base}/jobs/{RQ_QUEUE}/failed/8/asc/1.json").json()["jobs"]
            except httpx.HTTPError:
                return None

        [listed] = wait_until(jobs, timeout_s=30)
        assert listed["id"] == dl_id and "rejected_422" in listed["exc_info"]
        queues = httpx.get(f"{base}/queues.json").json()["queues"]
        assert any(q["name"] == RQ_QUEUE and q["failed_job_registry_count"] == 1 for q in queues)
        [worker] = httpx.get(f"{base}/workers.json").json()["workers"]
        assert worker["state"] in ("idle", "busy") and worker["queues"] == [RQ_QUEUE]
    finally:
        stop([dashboard])


def test_rq_requeue_replays_a_dead_letter_through_newest_wins(
    start_worker, ingest_url, sandbox_url, conn, redis_url
):
    start_worker()
    [old] = make_dead_letters(ingest_url, sandbox_url, conn)
    send(ingest_url, "c0", "newer", at=T0 + 1000)  # arrives after, is applied
    wait_until(lambda: (convo(sandbox_url, "a", "c0") or {}).get("title") == "newer")
    wait_until(lambda: failed_ids(conn) == [old], timeout_s=10)
    done = rq("requeue", "--queue", RQ_QUEUE, old, url=redis_url)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: Job.fetch(old, connection=conn).get_status() == "finished", timeout_s=15)
    assert dead_ids(conn) == [] and failed_ids(conn) == []
    assert Job.fetch(old, connection=conn).return_value() == "replayed"
    time.sleep(0.3)
    assert convo(sandbox_url, "a", "c0")["title"] == "newer"  # the older value lost


def test_rq_requeue_all_replays_every_dead_letter(
    start_worker, ingest_url, sandbox_url, conn, redis_url
):
    start_worker()
    ids = make_dead_letters(ingest_url, sandbox_url, conn, n=3)
    wait_until(lambda: failed_ids(conn) == ids, timeout_s=10)
    assert rq("requeue", "--queue", RQ_QUEUE, "--all", url=redis_url).returncode == 0
    for i in range(3):
        wait_until(
            lambda i=i: (convo(sandbox_url, "a", f"c{i}") or {}).get("title") == f"refused {i}"
        )
    wait_until(lambda: dead_ids(conn) == [] and failed_ids(conn) == [], timeout_s=10)


def test_purging_a_dead_letter_removes_its_failed_job(
    start_worker, ingest_url, sandbox_url, conn, env
):
    start_worker()
    first, second = make_dead_letters(ingest_url, sandbox_url, conn, n=2)
    wait_until(lambda: failed_ids(conn) == [first, second], timeout_s=10)
    assert cli("dlq", "purge", first, env=env).returncode == 0
    assert failed_ids(conn) == [second] and not conn.exists(Job.key_for(first))
    assert not conn.exists(f"rq:results:{first}")
    assert cli("dlq", "replay", second, env=env).returncode == 0
    assert failed_ids(conn) == [] and not conn.exists(Job.key_for(second))


def test_dlq_replay_all_runs_as_an_rq_job_and_answers_at_once(
    start_worker, ingest_url, sandbox_url, conn, env
):
    start_worker()
    ids = make_dead_letters(ingest_url, sandbox_url, conn, n=3)
    done = cli("dlq", "replay", "--all", env=env)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split("RQ job ")[1].split()[0]
    wait_until(lambda: Job.fetch(job_id, connection=conn).get_status() == "finished", timeout_s=15)
    assert Job.fetch(job_id, connection=conn).return_value() == {"replayed": len(ids)}
    for i in range(3):
        wait_until(
            lambda i=i: (convo(sandbox_url, "a", f"c{i}") or {}).get("title") == f"refused {i}"
        )
    assert json.loads(cli("dlq", "list", "--json", env=env).stdout) == []


def test_a_link_that_releases_many_waiting_changes_replays_them_in_an_rq_job(
    start_worker, ingest_url, sandbox_url, conn, env
):
    from bridge.store.rq_jobs import LARGE_REPLAY

    start_worker()
    tags = [f"t{i}" for i in range(LARGE_REPLAY + 10)]
    payload = [
        {"external_id": "T-1", "occurred_at": T0 + i, "tags": {"add": [tag]}}
        for i, tag in enumerate(tags)
    ]
    body, headers = signed(SECRET, payload)
    answer = httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202 and answer.json()["unroutable"] == len(tags), answer.text
    done = cli("links", "set", "demo", "T-1", "a", "linked", env=env)
    assert done.returncode == 0, done.stderr
    assert "replay in RQ job" in done.stdout, done.stdout
    job_id = done.stdout.split("RQ job ")[1].split()[0]
    wait_until(lambda: Job.fetch(job_id, connection=conn).get_status() == "finished", timeout_s=20)
    wait_until(
        lambda: sorted((convo(sandbox_url, "a", "linked") or {}).get("tags", [])) == sorted(tags),
        timeout_s=20,
    )
    assert dead_ids(conn) == []


def test_a_dead_letter_made_before_the_mirror_gets_its_job_from_the_reconcile(
    start_worker, ingest_url, sandbox_url, conn
):
    start_worker()
    [dl_id] = make_dead_letters(ingest_url, sandbox_url, conn)
    wait_until(lambda: failed_ids(conn) == [dl_id], timeout_s=10)
    Job.fetch(dl_id, connection=conn).delete()  # rq-dashboard's Delete
    from bridge.store.rq_mirror import reconcile

    assert reconcile(conn) == 1
    assert failed_ids(conn) == [dl_id] and dead_ids(conn) == [dl_id]  # data is not dropped


def test_rq_requeue_stops_at_a_dead_letter_replayed_after_it_listed_it_and_loses_nothing(
    start_worker, ingest_url, sandbox_url, conn, env, redis_url
):
    """`rq requeue --all` racing `dlq replay --all`: the CLI lists the failed jobs, then
    requeues them one by one; a job whose dead letter was replayed in between is gone. RQ
    3.0's CLI then stops on NoSuchJobError (or InvalidJobOperation when only the registry
    entry is gone): it catches InvalidJobOperationError, a class RQ never raises. Asking it
    for that job first, as the race does, shows it; nothing is lost, and a rerun finishes."""
    from rq.exceptions import InvalidJobOperation, InvalidJobOperationError

    assert not issubclass(InvalidJobOperation, InvalidJobOperationError)  # RQ's bug, still
    start_worker()
    gone, left = make_dead_letters(ingest_url, sandbox_url, conn, n=2)
    wait_until(lambda: failed_ids(conn) == [gone, left], timeout_s=10)
    assert cli("dlq", "replay", gone, env=env).returncode == 0  # after the CLI's listing
    crashed = rq("requeue", "--queue", RQ_QUEUE, gone, left, url=redis_url)
    assert crashed.returncode != 0 and "NoSuchJobError" in crashed.stderr
    assert failed_ids(conn) == [left] and dead_ids(conn) == [left]  # not requeued, not lost
    assert rq("requeue", "--queue", RQ_QUEUE, "--all", url=redis_url).returncode == 0
    for i in range(2):
        wait_until(
            lambda i=i: (convo(sandbox_url, "a", f"c{i}") or {}).get("title") == f"refused {i}"
        )
    wait_until(lambda: dead_ids(conn) == [] and failed_ids(conn) == [], timeout_s=10)


INTERNAL = r"\b[fth]:[\w-]|\b1[0-9]{12}\b"  # change names as stored, epoch milliseconds


def test_the_failed_jobs_text_lists_its_events_in_words_and_utc_times(
    start_worker, ingest_url, sandbox_url, conn
):
    import re

    start_worker()
    [dl_id] = make_dead_letters(ingest_url, sandbox_url, conn)
    wait_until(lambda: failed_ids(conn), timeout_s=10)
    text = Job.fetch(dl_id, connection=conn).latest_result().exc_string
    assert 'title = "refused 0"  from demo:' in text and "events: 1" in text
    assert re.search(r"  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z  422  ", text), text
    assert re.findall(INTERNAL, text.replace(dl_id, "ID")) == [], text  # (ids start with a time)


def test_a_requeue_that_fails_again_still_lists_the_events(
    start_worker, ingest_url, conn, redis_url
):
    """Still unroutable: RQ records the job's failure anew; it used to be a bare traceback.
    Our workers record the dead letter's text alone (another RQ worker: under a traceback)."""
    start_worker()
    payload = {"external_id": "T-77", "occurred_at": T0, "set": {"title": "waits"}}
    body, headers = signed(SECRET, payload, msg_id="evt_waits")
    assert (
        httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).status_code == 202
    )
    [dl_id] = wait_until(lambda: failed_ids(conn), timeout_s=10)
    assert rq("requeue", "--queue", RQ_QUEUE, dl_id, url=redis_url).returncode == 0
    job = wait_until(
        lambda: (
            (j := Job.fetch(dl_id, connection=conn)).get_status() == "failed"
            and j.latest_result().type.name == "FAILED"
            and "still unroutable" in (j.latest_result().exc_string or "")
            and j
        ),
        timeout_s=15,
    )
    text = job.latest_result().exc_string
    assert 'title = "waits"  from demo:evt_waits' in text and "DeadLetter: unroutable" in text
    assert "Traceback" not in text and text.startswith(f"dead letter {dl_id} is still unroutable")
    assert dead_ids(conn) == [dl_id]
