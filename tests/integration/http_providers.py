"""Local HTTP servers that answer like Twilio's Messages API and FCM HTTP v1 (with Google's token server),
for the SMS and push connectors' tests: aiohttp on loopback, in a thread of their own, checking every
request as the provider would (authentication, content type, required fields) and keeping what they
received; answers scripted per recipient (429 with Retry-After, 400, 404 UNREGISTERED, ...). Also the
helpers to run a connector on its own loop and to read its group's commits."""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from confluent_kafka import Consumer, Producer, TopicPartition

from orchestrator.config import Settings
from orchestrator.connectors.fcm import GRANT_TYPE, SCOPE
from orchestrator.connectors.runtime import ConnectorRuntime
from orchestrator.contracts import ChannelAction
from orchestrator.kafka.local_broker import free_port
from orchestrator.testing import wait_until
from orchestrator.testing.service_account import ServiceAccountFile, verify_assertion

ACCOUNT_SID = "AC" + "5ef8732a3c49700934481addd5ce1659"
AUTH_TOKEN = "twilio-test-auth-token"
SENDER = "+15005550006"

Answer = tuple[int, dict[str, Any] | None, dict[str, str]]
"""A scripted answer: status, JSON body (None: the provider's own), headers."""


@dataclass
class Request:
    """One request a server received, and the status it answered."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return orjson.loads(self.body)


class _Threaded:
    """An aiohttp application served on 127.0.0.1 from a thread with its own event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.app = web.Application()
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Any:
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._runner = web.AppRunner(self.app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert started.wait(10), "the test server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _record(self, request: web.Request) -> Request:
        seen = Request(time.monotonic(), request.path, dict(request.headers), await request.read())
        with self.lock:
            self.requests.append(seen)
        return seen

    def received(self, path_part: str = "") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if path_part in r.path]


def _answer(
    seen: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    seen.status = status
    return web.json_response(body, status=status, headers=headers)


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class TwilioServer(_Threaded):
    """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` as Twilio answers it: basic auth with the
    account SID and ``AUTH_TOKEN`` (else 401 20003), the account of the path (else 404 20404),
    form-encoded (else 400), ``To``, ``Body`` and ``From`` or ``MessagingServiceSid`` required (else 400
    21604 / 21602 / 21603); then 201 with a new ``SM…`` sid, or ``script[To]``'s next answer."""

    def __init__(self) -> None:
        super().__init__()
        self.script: dict[str, list[Answer]] = {}
        self.app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._messages)

    async def _messages(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _answer(seen, 401, twilio_error(401, 20003, "Authenticate"))
        if request.match_info["account"] != ACCOUNT_SID:
            return _answer(seen, 404, twilio_error(404, 20404, "The requested resource was not found"))
        if request.content_type != "application/x-www-form-urlencoded":
            return _answer(seen, 400, twilio_error(400, 21620, "Invalid media content type"))
        form = seen.form()
        if not form.get("To"):
            return _answer(seen, 400, twilio_error(400, 21604, "A 'To' phone number is required."))
        if not form.get("Body"):
            return _answer(seen, 400, twilio_error(400, 21602, "Message body is required."))
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _answer(seen, 400, twilio_error(400, 21603, "A 'From' phone number is required."))
        with self.lock:
            scripted = self.script.get(form["To"])
            answer = scripted.pop(0) if scripted else None
        if answer is not None:
            status, body, headers = answer
            return _answer(seen, status, body or twilio_error(status, 20000 + status, "scripted"), headers)
        sid = "SM" + secrets.token_hex(16)
        return _answer(
            seen,
            201,
            {
                "sid": sid,
                "status": "queued",
                "to": form["To"],
                "from": form.get("From"),
                "body": form["Body"],
            },
        )

    def accepted(self) -> list[dict[str, str]]:
        """The forms of the messages it accepted, in order."""
        return [r.form() for r in self.received("/Messages.json") if r.status == 201]


def fcm_error(status: int, name: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if code is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        ]
    return {"error": error}


UNREGISTERED: Answer = (
    404,
    fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
    {},
)


class FcmServer(_Threaded):
    """Google's token server (``POST /token``: the JWT-bearer grant, the assertion's RS256 signature
    checked with the account's public key and its claims — iss, scope, aud, iat, exp) and FCM's
    ``POST /v1/projects/{project}/messages:send`` (a bearer token it issued and did not revoke, else 401
    UNAUTHENTICATED; JSON; ``message.token`` and string data values, else 400 INVALID_ARGUMENT; another
    project: 404 without UNREGISTERED); then 200 with the message's name, or ``script[device token]``'s
    next answer (``"revoke"``: every issued token is revoked before the request is looked at)."""

    def __init__(self) -> None:
        super().__init__()
        self.account: ServiceAccountFile | None = None
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.script: dict[str, list[Answer | str]] = {}
        self.app.router.add_post("/token", self._token)
        self.app.router.add_post("/v1/projects/{project}/messages:send", self._send)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    async def _token(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        assert self.account is not None, "set server.account first"

        def refused(why: str) -> web.Response:
            return _answer(seen, 400, {"error": "invalid_grant", "error_description": why})

        if request.content_type != "application/x-www-form-urlencoded":
            return refused("expected a form")
        form = seen.form()
        if form.get("grant_type") != GRANT_TYPE:
            return _answer(seen, 400, {"error": "unsupported_grant_type"})
        try:
            header, claims = verify_assertion(form.get("assertion", ""), self.account.public_key)
        except ValueError as exc:
            return refused(f"Invalid JWT: {exc}")
        now = time.time()
        problems = [
            name
            for name, ok in (
                ("iss", claims.get("iss") == self.account.client_email),
                ("scope", claims.get("scope") == SCOPE),
                ("aud", claims.get("aud") == self.token_uri),
                ("iat", isinstance(claims.get("iat"), int) and claims["iat"] <= now + 60),
                ("exp", isinstance(claims.get("exp"), int) and now < claims["exp"] <= claims["iat"] + 3600),
                ("typ", header.get("typ") == "JWT"),
            )
            if not ok
        ]
        if problems:
            return refused(f"Invalid JWT claims: {', '.join(problems)}")
        token = f"ya29.local-{secrets.token_hex(8)}"
        with self.lock:
            self.issued.append(token)
            self.valid.add(token)
        return _answer(seen, 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _send(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        assert self.account is not None
        body = orjson.loads(seen.body) if request.content_type == "application/json" else None
        message = body.get("message") if isinstance(body, dict) else None
        device = message.get("token") if isinstance(message, dict) else None
        with self.lock:
            scripted = self.script.get(device or "")
            answer = scripted.pop(0) if scripted else None
            if answer == "revoke":
                self.valid.clear()
                answer = None
            authorized = request.headers.get("Authorization", "").removeprefix("Bearer ") in self.valid
        if not authorized:
            return _answer(
                seen,
                401,
                fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            )
        if request.match_info["project"] != self.account.project_id:
            return _answer(seen, 404, fcm_error(404, "NOT_FOUND", "Requested entity was not found."))
        data = message.get("data", {}) if isinstance(message, dict) else None
        if (
            not isinstance(device, str)
            or not device
            or not isinstance(data, dict)
            or not all(isinstance(v, str) for v in data.values())
        ):
            return _answer(
                seen, 400, fcm_error(400, "INVALID_ARGUMENT", "Invalid message", "INVALID_ARGUMENT")
            )
        if isinstance(answer, tuple):
            status, reply, headers = answer
            return _answer(seen, status, reply or fcm_error(status, "SCRIPTED", "scripted"), headers)
        name = f"projects/{self.account.project_id}/messages/0:{secrets.token_hex(8)}"
        return _answer(seen, 200, {"name": name})

    def exchanges(self) -> int:
        return len([r for r in self.received("/token") if r.status == 200])

    def accepted(self) -> list[dict[str, Any]]:
        """The messages it accepted, in order."""
        return [r.json()["message"] for r in self.received("messages:send") if r.status == 200]


# -- running a connector ------------------------------------------------------------------------------
class Runnable(Protocol):
    runtime: ConnectorRuntime

    async def run(self, stop: asyncio.Event) -> Any: ...


@contextmanager
def running(connector: Runnable) -> Iterator[None]:
    """``connector`` on its own event loop in a thread until the block ends (then stopped: its offsets
    committed); raises what stopped it."""
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await connector.run(box["stop"])

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    ready.wait(30)
    try:
        wait_until(
            lambda: connector.runtime.assigned or "error" in box, timeout=60, what="partitions assigned"
        )
        yield
    finally:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(60)
        assert not thread.is_alive()
        if "error" in box:
            raise box["error"]


def publish(settings: Settings, channel: str, actions: list[ChannelAction]) -> list[tuple[int, int]]:
    """The actions on the channel's topic, keyed by customer; the (partition, offset) of each."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    placed: list[tuple[int, int]] = []
    for a in actions:
        producer.produce(
            settings.topics.action_topic(channel),
            key=a.customer_id.encode(),
            value=a.to_json(),
            on_delivery=lambda err, msg: placed.append((msg.partition(), msg.offset())),
        )
        producer.flush(30)
    assert len(placed) == len(actions)
    return placed


def committed_everything(settings: Settings, channel: str, group: str) -> bool:
    """Whether ``group`` committed every partition of the channel's topic up to its end."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group})
    try:
        topic = settings.topics.action_topic(channel)
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in committed}
        return all(committed[p] == ends[p] for p in ends if ends[p] > 0)
    finally:
        consumer.close()
