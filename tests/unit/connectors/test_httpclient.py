"""HTTP for the providers (connectors/httpclient.py): where a request failed decides what the connector
may do — nothing listening: the provider is unavailable; the connection dropped or no answer after the
request went out: an unknown outcome (or unavailable for a request that changes nothing); base URLs and
Retry-After. The servers are raw sockets on loopback, answering (or not) as the test needs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from orchestrator.connectors.errors import ProviderUnavailable, UnknownOutcome
from orchestrator.connectors.httpclient import HttpClient, basic_auth, check_base_url, parse_retry_after
from orchestrator.exceptions import ConfigError
from orchestrator.kafka.local_broker import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/x"
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head + await reader.readexactly(length)


async def test_an_answer_comes_back_whole() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        body = b'{"sid":"SM1"}'
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nRetry-After: 2\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    client = HttpClient("Test", 5.0)
    async with raw_server(handler) as url:
        answer = await client.post(url, data=b"a=1", headers={"Content-Type": "text/plain"})
    await client.close()
    assert (answer.status, answer.json(), answer.retry_after()) == (201, {"sid": "SM1"}, 2.0)
    assert seen[0].startswith(b"POST /x HTTP/1.1\r\n")
    assert seen[0].endswith(b"\r\n\r\na=1")


async def test_nothing_listening_is_the_provider_unavailable() -> None:
    client = HttpClient("Test", 5.0)
    with pytest.raises(ProviderUnavailable, match=r"cannot reach Test at http://127\.0\.0\.1"):
        await client.post(f"http://127.0.0.1:{free_port()}/x", data=b"", headers={})
    await client.close()


async def test_a_connection_dropped_after_the_request_is_an_unknown_outcome() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()  # the request was read: it may have been acted upon

    client = HttpClient("Test", 5.0)
    async with raw_server(handler) as url:
        with pytest.raises(UnknownOutcome, match="after the request was sent"):
            await client.post(url, data=b"x", headers={})
        with pytest.raises(ProviderUnavailable):  # a token exchange: nothing changed, try again
            await client.post(url, data=b"x", headers={}, sent_is_unknown=False)
    await client.close()


async def test_no_answer_within_the_timeout_is_an_unknown_outcome() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.close()

    client = HttpClient("Test", 0.3)
    async with raw_server(handler) as url:
        with pytest.raises(UnknownOutcome, match="Timeout"):
            await client.post(url, data=b"x", headers={})
        release.set()
    await client.close()


def test_base_urls_are_https_or_loopback_http() -> None:
    assert check_base_url("https://api.twilio.com/", "s") == "https://api.twilio.com"
    assert check_base_url("http://127.0.0.1:9/base", "s") == "http://127.0.0.1:9/base"
    assert check_base_url("http://localhost:9", "s") == "http://localhost:9"
    assert check_base_url("http://[::1]:9", "s") == "http://[::1]:9"
    for bad in ("http://api.twilio.com", "http://10.0.0.1", "api.twilio.com", "https://x/?a=1"):
        with pytest.raises(ConfigError, match=r"^s '"):
            check_base_url(bad, "s")


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now) == 0.0  # in the past: no wait
    assert parse_retry_after("-5", now) == 0.0
    for unreadable in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(unreadable, now) is None


def test_basic_auth_header() -> None:
    assert basic_auth("AC1", "tok") == "Basic QUMxOnRvaw=="
