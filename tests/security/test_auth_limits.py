"""Finding 8 of issue 10 (authentication): wrong tokens are rate-limited per client
address, and a blocked address learns nothing, not even that a token was right."""

from __future__ import annotations

import httpx
from service.conftest import ADMINS, TOKENS, start_service

from async_processor.service import ServiceConfig


async def test_failed_authentication_is_rate_limited_per_address() -> None:
    config = ServiceConfig(
        tokens=dict(TOKENS),
        admins=list(ADMINS),
        auth_failure_burst=3,
        auth_failure_rate=0.001,  # one more try per 1000 s: blocked for this whole test
    )
    with start_service(config) as service:
        async with httpx.AsyncClient(base_url=service.base_url) as c:
            for attempt in range(3):
                wrong = await c.get("/tasks", headers={"Authorization": f"Bearer guess-{attempt}"})
                assert wrong.status_code == 401
            blocked = await c.get("/tasks", headers={"Authorization": "Bearer guess-4"})
            assert blocked.status_code == 429
            assert blocked.json()["error"] == "too_many_failed_logins"
            assert int(blocked.headers["retry-after"]) >= 1
            right = await c.get("/tasks", headers=service.headers)
            assert right.status_code == 429  # a right guess looks like a wrong one
            assert (await c.get("/health")).status_code == 200
