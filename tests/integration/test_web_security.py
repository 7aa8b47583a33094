"""The worker's HTTP API is private by default: it listens on loopback only, every route the app
registers (Faust's included) wants the bearer token except the probes and /metrics, and those carry no
customer data. Checked on a real worker process."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from orchestrator.config import Settings
from orchestrator.runtime.app import build_app
from orchestrator.runtime.web import OPEN_PATHS
from orchestrator.testing import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

EMAIL = "private.person@example.com"
PHONE = "+4915112345678"


def _routes(settings: Settings) -> list[tuple[str, str]]:
    """(method, path pattern) of every route a worker with these settings serves."""
    app = build_app(settings).app
    app.web.init_server()
    return sorted(
        {(r.method, r.resource.canonical) for r in app.web.web_app.router.routes() if r.resource is not None}
    )


def _concrete(pattern: str) -> str:
    return re.sub(r"\{[^}]+\}", "cust-web", pattern)


def _status(worker: WorkerProcess, method: str, path: str, header: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(worker.url + path, method=method)
    if header is not None:
        request.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a socket listening on ``port`` (from /proc/net/tcp*)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _produce_customer(settings: Settings) -> None:
    event = {
        "event_id": "web-1",
        "type": "profile.updated",
        "identifiers": {"customer_id": "cust-web", "email": EMAIL, "phone": PHONE},
        "occurred_at": "2026-11-20T10:00:00Z",
        "source": "test",
        "properties": {"first_name": "Private"},
    }
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(settings.topics.raw_events, key=b"cust-web", value=orjson.dumps(event))
    assert producer.flush(30) == 0


def test_every_route_wants_the_token_but_probes_and_metrics(
    settings: Settings, worker: WorkerProcess
) -> None:
    assert settings.api_token is not None
    token = settings.api_token.get_secret_value()
    _produce_customer(settings)
    wait_until(lambda: worker.get_json("/customers/cust-web/")[0] == 200, what="the customer's state")

    routes = _routes(settings)
    paths = {pattern for _, pattern in routes}
    assert {"/customers/{customer_key}/", "/identities/{name}/", "/journeys/", "/clock/"} <= paths
    assert paths >= OPEN_PATHS
    assert not any(p.startswith(("/table", "/router", "/graph", "/stats")) for p in paths), paths

    for method, pattern in routes:
        path = _concrete(pattern)
        if pattern in OPEN_PATHS:
            status, body = _status(worker, method, path, None)
            assert status == 200, (method, path, status)
            for personal in (EMAIL.encode(), PHONE.encode(), b"cust-web", b"Private"):
                assert personal not in body, (path, personal, body[:200])
            continue
        for header in (None, "Bearer wrong-token", f"Basic {token}", "Bearer ", token):
            status, body = _status(worker, method, path, header)
            assert status == 401, (method, path, header, status)
            assert EMAIL.encode() not in body
            assert b"cust-web" not in body
        status, _ = _status(worker, method, path, f"Bearer {token}")
        assert status in (200, 404), (method, path, status)

    status, body = _status(worker, "GET", "/customers/cust-web/", f"Bearer {token}")
    assert status == 200
    assert EMAIL.encode() in body  # with the token, the data is there
    # paths the app does not know are refused the same way (no probing without the token)
    for path in ("/table/customers/cust-web/", "/router/", "/graph/", "/stats/", "/nothing"):
        assert _status(worker, "GET", path, None)[0] == 401, path
        assert _status(worker, "GET", path, f"Bearer {token}")[0] == 404, path


def test_listens_on_loopback_only(worker: WorkerProcess) -> None:
    addresses = _listening_addresses(worker.settings.web_port)
    # 127.0.0.1 in /proc/net/tcp's little-endian hex; never 0.0.0.0 (00000000) or :: (all zeros)
    assert addresses == {"0100007F"}, addresses


def test_no_token_configured_means_no_data(settings: Settings, tmp_path: Path) -> None:
    bare = settings.model_copy(update={"api_token": None})
    proc = WorkerProcess(bare, tmp_path / "worker-no-token.log").start()
    try:
        proc.wait_ready()
        for path in (
            "/customers/cust-web/",
            "/identities/email:x@example.com/",
            "/journeys/",
            "/clock/",
            "/",
        ):
            status, body = _status(proc, "GET", path, "Bearer anything")
            assert status == 401, path
            assert b"no api_token is configured" in body
        assert _status(proc, "GET", "/healthz", None)[0] == 200
    finally:
        proc.stop()
