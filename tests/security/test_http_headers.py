"""Finding 8 of issue 10 (headers and cookie): every answer carries a Content-Security-Policy
and anti-framing headers; the dashboard's cookie is a signed session, never the token."""

from __future__ import annotations

import httpx
import pytest
from service.conftest import ADMINS, TOKENS, RunningService, start_service

from async_processor.service import ServiceConfig
from async_processor.service.gate import COOKIE

PATHS = ["/", "/health", "/tasks", "/tasks/nobody", "/dashboard/app.js", "/no-such-route"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("authorized", [True, False])
async def test_every_answer_has_the_security_headers(
    service: RunningService, path: str, authorized: bool
) -> None:
    headers = service.headers if authorized else {}
    async with httpx.AsyncClient(base_url=service.base_url, headers=headers) as c:
        response = await c.get(path)
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def session_cookie(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}="), header
    return header


async def test_the_cookie_is_a_signed_session_not_the_token(service: RunningService) -> None:
    token = service.tokens["alice"]
    async with httpx.AsyncClient(base_url=service.base_url) as browser:
        page = await browser.get("/", params={"access_token": token})
        header = session_cookie(page)
        attributes = [part.strip().lower() for part in header.split(";")]
        assert token not in header
        assert "httponly" in attributes and "samesite=strict" in attributes
        assert "secure" not in attributes  # plain HTTP, no trusted proxy
        assert (await browser.get("/stats")).status_code == 200  # the session works
        assert (await browser.post("/tasks", json={"task_type": "echo"})).status_code == 401
    value = browser.cookies[COOKIE]
    forged = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    renamed = "bob" + value[value.index(":") :]
    for cookie in (forged, renamed, token):
        async with httpx.AsyncClient(base_url=service.base_url, cookies={COOKIE: cookie}) as c:
            assert (await c.get("/stats")).status_code == 401


async def test_only_an_admin_gets_a_session(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.base_url) as browser:
        page = await browser.get("/", params={"access_token": service.tokens["bob"]})
        assert page.status_code == 200 and "set-cookie" not in page.headers


@pytest.mark.parametrize(("trusted", "secure"), [([], False), (["127.0.0.1"], True)])
async def test_secure_behind_a_trusted_tls_proxy(trusted: list[str], secure: bool) -> None:
    config = ServiceConfig(tokens=dict(TOKENS), admins=list(ADMINS), trusted_proxies=trusted)
    with start_service(config) as service:
        async with httpx.AsyncClient(base_url=service.base_url) as browser:
            page = await browser.get(
                "/",
                params={"access_token": service.tokens["alice"]},
                headers={"X-Forwarded-Proto": "https"},
            )
    attributes = [part.strip().lower() for part in session_cookie(page).split(";")]
    assert ("secure" in attributes) is secure
