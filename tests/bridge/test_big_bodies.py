"""Big webhook bodies at once: each is accepted (202), none fails for another's size."""

import asyncio

import httpx
import orjson

from tests.conftest import SECRET
from tests.signing import standard_headers

T0 = 1_764_000_000_000


def test_two_dozen_concurrent_950_kb_bodies_are_all_accepted(make_settings):
    from bridge.app import build_app
    from tests.servers import serve_app_in_thread

    settings = make_settings("[ingest]\nmax_body_bytes = 1048576\n")
    bodies = []
    for i in range(24):
        tags = [f"tag-{i}-{j:06d}" for j in range(60_000)]  # ~950 KB of tags.add each
        payload = {"agent_id": "a", "convo_id": f"c{i}", "occurred_at": T0, "tags": {"add": tags}}
        bodies.append(orjson.dumps(payload))
    assert all(900_000 < len(b) < 1_000_000 for b in bodies)

    async def send_all(url):
        async with httpx.AsyncClient(timeout=120) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{url}/webhooks/demo", content=b, headers=standard_headers(SECRET, b)
                    )
                    for b in bodies
                )
            )

    with serve_app_in_thread(build_app(settings)) as url:
        answers = asyncio.run(send_all(url))
    assert [a.status_code for a in answers] == [202] * 24
