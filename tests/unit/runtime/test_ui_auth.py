"""The login cookie of the worker's page and the middleware that takes it (orchestrator/runtime/ui_auth.py,
orchestrator/runtime/web.py): good for /ui/ pages only, made from the token but never the token,
ended by time and by removing the token it was made with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.runtime.ui_auth import (
    COOKIE_NAME,
    SESSION_SECONDS,
    cookie_valid,
    is_ui_path,
    make_cookie,
    set_login_cookie,
    ui_authorized,
)
from orchestrator.runtime.web import _token_middleware

NOW = 1_750_000_000.0


def test_a_cookie_made_with_the_token_is_valid_until_it_expires() -> None:
    value = make_cookie("s3cret", NOW)
    assert cookie_valid(value, ("s3cret",), NOW)
    assert cookie_valid(value, ("s3cret",), NOW + SESSION_SECONDS - 1)
    assert not cookie_valid(value, ("s3cret",), NOW + SESSION_SECONDS)
    assert "s3cret" not in value  # never the token itself


def test_a_tampered_cookie_is_refused() -> None:
    value = make_cookie("s3cret", NOW)
    version, expires, mac = value.split(".")
    later = str(int(expires) + 86_400)
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    for bad in (
        f"{version}.{later}.{mac}",  # a longer life with the old MAC
        f"{version}.{expires}.{flipped}",
        f"v2.{expires}.{mac}",
        f"{version}.{expires}.",
        f"{version}.-1.{mac}",
        f"{version}.{expires}",
        "s3cret",
        "",
        None,
    ):
        assert not cookie_valid(bad, ("s3cret",), NOW), bad
    assert not cookie_valid(value, ("other",), NOW)
    assert not cookie_valid(value, (), NOW)  # no token configured: nothing is good


def test_rotated_tokens() -> None:
    old = make_cookie("old-token", NOW)
    new = make_cookie("new-token", NOW)
    assert cookie_valid(old, ("new-token", "old-token"), NOW)  # while both are configured
    assert cookie_valid(new, ("new-token", "old-token"), NOW)
    assert not cookie_valid(old, ("new-token",), NOW)  # the old token removed: its logins end
    assert cookie_valid(new, ("new-token",), NOW)


def test_the_cookie_is_good_for_ui_pages_only() -> None:
    value = make_cookie("s3cret", NOW)
    for path in ("/ui", "/ui/", "/ui/journeys/welcome", "/ui/customers"):
        assert is_ui_path(path)
        assert ui_authorized(path, value, ("s3cret",), NOW), path
    for path in ("/customers/c-1/", "/journeys/", "/uix", "/", "/u/ui/", "/funnels/"):
        assert not ui_authorized(path, value, ("s3cret",), NOW), path


def test_the_cookie_attributes() -> None:
    response = aioweb.Response()
    set_login_cookie(response, "s3cret", secure=False, now=NOW)
    morsel = response.cookies[COOKIE_NAME]
    assert cookie_valid(morsel.value, ("s3cret",), NOW)
    assert morsel["path"] == "/ui"
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert not morsel["secure"]
    assert int(morsel["max-age"]) == SESSION_SECONDS
    secure = aioweb.Response()
    set_login_cookie(secure, "s3cret", secure=True, now=NOW)
    assert secure.cookies[COOKIE_NAME]["secure"] is True


Client = TestClient[aioweb.Request, aioweb.Application]


async def _client(tokens: tuple[str, ...]) -> Client:
    async def data(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(text="customer data")

    app = aioweb.Application(middlewares=[_token_middleware(tokens)])
    for path in ("/ui/", "/ui/journeys/{jid}", "/ui/login", "/customers/{key}/", "/healthz"):
        app.router.add_get(path, data)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    return client


Check = Callable[[Client], Awaitable[None]]


async def _with(tokens: tuple[str, ...], check: Check) -> None:
    client = await _client(tokens)
    try:
        await check(client)
    finally:
        await client.close()


async def _get(client: Client, path: str, **kwargs: Any) -> tuple[int, str]:
    async with client.get(path, allow_redirects=False, **kwargs) as resp:
        return resp.status, await resp.text()


async def test_the_middleware_takes_the_cookie_under_ui_only() -> None:
    good = make_cookie("new-token")
    old = make_cookie("old-token")

    async def check(client: Client) -> None:
        status, body = await _get(client, "/ui/")
        assert status == 401
        assert "customer data" not in body
        assert 'action="/ui/login"' in body
        assert await _get(client, "/ui/", cookies={COOKIE_NAME: good}) == (200, "customer data")
        assert (await _get(client, "/ui/journeys/welcome", cookies={COOKIE_NAME: good}))[0] == 200
        assert (await _get(client, "/ui/", cookies={COOKIE_NAME: old}))[0] == 401  # rotated away
        assert (await _get(client, "/ui/", cookies={COOKIE_NAME: good + "0"}))[0] == 401
        assert (await _get(client, "/ui/", cookies={COOKIE_NAME: "new-token"}))[0] == 401
        # the JSON API wants the header: the cookie is no good there
        status, body = await _get(client, "/customers/c-1/", cookies={COOKIE_NAME: good})
        assert status == 401
        assert "customer data" not in body
        headers = {"Authorization": "Bearer new-token"}
        assert (await _get(client, "/customers/c-1/", headers=headers))[0] == 200
        assert (await _get(client, "/ui/", headers=headers))[0] == 200  # the header works under /ui too
        assert (await _get(client, "/ui/login"))[0] == 200  # open: the handler decides
        assert (await _get(client, "/healthz"))[0] == 200

    await _with(("new-token",), check)


async def test_no_token_configured_serves_no_page() -> None:
    async def check(client: Client) -> None:
        for path in ("/ui/", "/ui/login", "/ui/journeys/welcome"):
            status, body = await _get(client, path, cookies={COOKIE_NAME: make_cookie("")})
            assert status == 401, path
            assert "no api_token is configured" in body
            assert "customer data" not in body

    await _with((), check)
