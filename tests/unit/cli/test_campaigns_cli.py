"""`orchestrator campaigns`: from simulate's state file, from Kafka (the reading stubbed: the broker's side is
tests/integration/test_segments.py), from a worker's `/campaigns/` (a stand-in server), the table, the
errors; and the worker's `/campaigns/` page itself on a stand-in app."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.cli.campaigns import campaigns_from_kafka, campaigns_from_state, format_rows
from orchestrator.config import load_settings
from orchestrator.core.campaign import CampaignRegistry, load_campaign_file
from orchestrator.kafka.deploy import prepare_deployments
from orchestrator.runtime.releases import CampaignCounts, campaigns_key
from orchestrator.runtime.segment_sizes import SegmentSizes, sizes_key

ROOT = Path(__file__).resolve().parents[3]
JOURNEYS = ROOT / "journeys"
EVENTS = JOURNEYS / "examples" / "vip_preview.events.jsonl"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The example campaign simulated: (its --state-out file, its --report)."""
    folder = tmp_path_factory.mktemp("sim")
    state, report = folder / "state.json", folder / "report.json"
    argv = ["simulate", "--journeys", str(JOURNEYS), "--events", str(EVENTS),
            "--policy", str(JOURNEYS / "policy.yaml"), "--until", "2025-04-30T00:00:00Z",
            "--state-out", str(state), "--report", str(report)]  # fmt: skip
    assert main(argv) == 0
    return state, orjson.loads(report.read_bytes())


def test_from_simulate_the_example_campaign(
    simulated: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    state, report = simulated
    # what simulate says the campaign did
    assert report["campaigns"] == {
        "vip_preview": {"late": 1, "scheduled": 4, "sent": 3, "unsent_not_subscribed": 1}
    }
    capsys.readouterr()
    assert main(["campaigns", "--from-simulate", str(state), "--json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert rows == [
        {
            "campaign": "vip_preview",
            "version": 1,
            "status": "active",
            "name": "Spring collection preview for VIPs",
            "segment": "vip",
            "audience": 5,  # ada, bea, cid, dov, fox: the VIPs at the end
            "scheduled": 4,
            "sent": 3,
            "suppressed": 1,
            "unsent": {"not_subscribed": 1},
            "held": 0,
            "late": 1,
            "left": 0,
            "entered": 0,
            "cancelled": 0,
        }
    ]
    assert main(["campaigns", "--from-simulate", str(state)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["campaign", "version", "status", "segment", "audience", "scheduled", "sent",
                              "suppressed", "late", "left", "entered", "held", "cancelled"]  # fmt: skip
    assert out[1].split() == ["vip_preview", "1", "active", "vip",
                              "5", "4", "3", "1", "1", "0", "0", "0", "0"]  # fmt: skip
    assert out[2] == "  suppressed 1 (not_subscribed 1)"
    assert out[3] == f"(from {state})"


def test_from_simulate_the_errors(
    simulated: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["campaigns", "--from-simulate", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: cannot read states" in capsys.readouterr().err
    report = tmp_path / "report.json"
    report.write_bytes(orjson.dumps({"events_read": 1, "campaigns": {}}))
    assert main(["campaigns", "--from-simulate", str(report)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("orchestrator campaigns: error: ")
    assert "the report of orchestrator simulate (--report), not its state file" in err
    for text in ("[]", "{not json"):
        report.write_text(text)
        assert main(["campaigns", "--from-simulate", str(report)]) == 2
        assert "not a state file" in capsys.readouterr().err
    # a simulation without campaigns: said so
    state = tmp_path / "state.json"
    welcome = JOURNEYS / "examples" / "welcome.events.jsonl"
    argv = ["simulate", "--journeys", str(JOURNEYS / "welcome.yaml"),
            "--events", str(welcome), "--state-out", str(state)]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["campaigns", "--from-simulate", str(state)]) == 0
    assert capsys.readouterr().out.startswith("no campaigns deployed (kind: campaign files;")


def test_the_table_lines_up_wide_numbers_and_every_reason() -> None:
    rows = [
        {"campaign": "spring_sale", "version": 12, "status": "paused", "segment": "cart_abandoners",
         "audience": 1_234_567, "scheduled": 1_000_000, "sent": 990_000, "suppressed": 10_000,
         "unsent": {"quiet_hours": 1, "no_consent": 9_999}, "held": 3, "late": 0, "left": 0, "entered": 0,
         "cancelled": 0},
        {"campaign": "gone", "version": None, "status": "not deployed", "segment": "", "audience": 0,
         "scheduled": 0, "sent": 7, "suppressed": 0, "unsent": {}, "held": 0, "late": 0, "left": 0,
         "entered": 0, "cancelled": 0},
    ]  # fmt: skip
    lines = format_rows(rows)
    assert len(lines) == 4
    header, spring, reasons, gone = lines
    assert spring.split()[:8] == ["spring_sale", "12", "paused", "cart_abandoners", "1,234,567", "1,000,000",
                                  "990,000", "10,000"]  # fmt: skip
    assert reasons == "  suppressed 10,000 (no_consent 9,999, quiet_hours 1)"
    assert gone.split()[:4] == ["gone", "-", "not", "deployed"]
    # numbers right-aligned under their header
    for name, value in (("audience", "1,234,567"), ("sent", "990,000"), ("cancelled", "0")):
        end = header.index(name) + len(name)
        assert spring[end - len(value) : end] == value
    assert gone[header.index("sent") + len("sent") - 1] == "7"


def _records_of(files: list[Path]) -> list[tuple[bytes | None, bytes | None, str]]:
    deps = prepare_deployments(files, datetime(2025, 3, 1, tzinfo=UTC))
    return [(d.key.encode(), d.to_json(), f"journeys[0]@{n}") for n, d in enumerate(deps)]


def _changelog() -> list[tuple[int, int, bytes | None, bytes | None]]:
    rows = [
        (sizes_key(0), {"vip": 2}),
        (campaigns_key(0), {"vip_preview": {"scheduled": 2, "sent": 1, "unsent_not_subscribed": 1}}),
        (sizes_key(1), {"vip": 3}),
        (campaigns_key(1), {"vip_preview": {"scheduled": 1, "sent": 1}}),
        (campaigns_key(1), {"vip_preview": {"scheduled": 2, "sent": 2, "late": 1}}),
    ]
    return [(0, n, f'"{key}"'.encode(), orjson.dumps(row)) for n, (key, row) in enumerate(rows)]


def test_from_kafka_the_deployments_and_the_latest_counts_of_every_partition(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.kafka import deploy

    settings = load_settings(environ={})
    asked: list[str] = []

    def whole_topic(s: Any, topic: str, timeout: float = 30.0) -> list[Any]:
        asked.append(topic)
        return _changelog()

    monkeypatch.setattr(deploy, "read_deployment_records", lambda s, timeout=30.0: _records_of(
        [JOURNEYS / "vip.yaml", JOURNEYS / "vip_preview.yaml"]))  # fmt: skip
    monkeypatch.setattr(deploy, "read_whole_topic", whole_topic)
    rows = campaigns_from_kafka(settings)
    assert asked == [f"{settings.app_id}-segment_sizes-changelog"]
    assert len(rows) == 1
    row = rows[0]
    shown = ("campaign", "version", "status", "segment",
             "audience", "scheduled", "sent", "suppressed", "late")  # fmt: skip
    assert [row[k] for k in shown] == ["vip_preview", 1, "active", "vip", 5, 4, 3, 1, 1]
    assert row["unsent"] == {"not_subscribed": 1}
    monkeypatch.setattr("orchestrator.cli._common.load_settings", lambda *a, **k: settings)
    capsys.readouterr()
    assert main(["campaigns"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:8] == ["vip_preview", "1", "active", "vip", "5", "4", "3", "1"]
    assert out[-1] == "(cluster-wide, from Kafka)"


# -- a worker ---------------------------------------------------------------------------------------
class _Worker(BaseHTTPRequestHandler):
    answer: Callable[[str, str | None], tuple[int, bytes]]

    def do_GET(self) -> None:
        status, body = type(self).answer(self.path, self.headers.get("Authorization"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def worker_url() -> Iterator[Callable[[Callable[[str, str | None], tuple[int, bytes]]], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[str, str | None], tuple[int, bytes]]) -> str:
        handler = type("Handler", (_Worker,), {"answer": staticmethod(answer)})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_from_a_worker_its_page_with_the_token(
    worker_url: Callable[..., str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    row = {"campaign": "vip_preview", "version": 1, "status": "active", "name": "", "segment": "vip",
           "audience": 5, "scheduled": 4, "sent": 3, "suppressed": 1, "unsent": {"not_subscribed": 1},
           "held": 0, "late": 1, "left": 0, "entered": 0, "cancelled": 0}  # fmt: skip
    seen: list[tuple[str, str | None]] = []

    def answer(path: str, auth: str | None) -> tuple[int, bytes]:
        seen.append((path, auth))
        if auth != "Bearer s3cret":
            return 401, b'{"error": "unauthorized: a bearer token is required"}'
        return 200, orjson.dumps({"campaigns": [row], "cluster_wide": False, "partitions_here": [0]})

    url = worker_url(answer)
    monkeypatch.delenv("ORCH_API_TOKEN", raising=False)
    capsys.readouterr()
    assert main(["campaigns", "--worker", url]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401 unauthorized: set ORCH_API_TOKEN (api_token) to the worker's token" in err
    monkeypatch.setenv("ORCH_API_TOKEN", "wrong")
    assert main(["campaigns", "--worker", url]) == 2
    assert "HTTP 401 unauthorized: wrong token" in capsys.readouterr().err
    monkeypatch.setenv("ORCH_API_TOKEN", "s3cret")
    assert main(["campaigns", "--worker", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["vip_preview", "1", "active", "vip"]
    assert out[2] == "  suppressed 1 (not_subscribed 1)"
    assert out[-1] == "(this worker's partitions only (Kafka unreachable))"
    assert main(["campaigns", "--worker", url, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out) == [row]
    assert {path for path, _ in seen} == {"/campaigns/"}


def test_from_a_worker_the_errors(worker_url: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    not_a_worker = worker_url(lambda path, auth: (200, b'{"status": "ok"}'))
    older = worker_url(lambda path, auth: (404, b'{"error": "not found"}'))
    broken = worker_url(lambda path, auth: (500, b"oops"))
    html = worker_url(lambda path, auth: (200, b"<html></html>"))
    capsys.readouterr()
    for url, said in (
        (not_a_worker, "no campaigns in the answer (is this a worker's address?)"),
        (older, "HTTP 404: no /campaigns/ page (a worker of an older version?)"),
        (broken, "HTTP 500"),
        (html, "the answer is not JSON (is this a worker's address?)"),
        ("http://127.0.0.1:1", "cannot reach the worker"),
    ):
        assert main(["campaigns", "--worker", url]) == 2
        assert said in capsys.readouterr().err, url


# -- the worker's page ------------------------------------------------------------------------------
class _App:
    def __init__(self) -> None:
        self.pages: dict[str, Callable[..., Any]] = {}

    def page(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.pages[path] = handler
            return handler

        return register


class _Web:
    @staticmethod
    def json(body: Any, status: int = 200) -> tuple[int, Any]:
        return status, body


def _page(monkeypatch: pytest.MonkeyPatch, changelog: Callable[..., Any]) -> tuple[int, Any]:
    from orchestrator.runtime import web

    registry = CampaignRegistry()
    registry.deploy(load_campaign_file(JOURNEYS / "vip_preview.yaml"), 0)
    counts, sizes = CampaignCounts(), SegmentSizes()
    counts.load(1, {"vip_preview": {"scheduled": 2, "sent": 2, "late": 1}})
    sizes.load(1, {"vip": 3})
    topic = SimpleNamespace(get_topic_name=lambda: "orch-segment_sizes-changelog")
    w = SimpleNamespace(
        settings=load_settings(environ={}),
        book=SimpleNamespace(campaign_registry=registry),
        campaign_counts=counts,
        segment_sizes=sizes,
        segment_sizes_table=SimpleNamespace(changelog_topic=topic),
    )
    monkeypatch.setattr(web, "read_whole_topic", changelog)
    app = _App()
    web.register_pages(app, w)  # type: ignore[arg-type]
    result: tuple[int, Any] = asyncio.run(app.pages["/campaigns/"](_Web(), None))
    return result


def test_the_page_counts_cluster_wide_and_this_worker_s_share(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def changelog(settings: Any, topic: str, timeout: float) -> list[Any]:
        asked.append(topic)
        return _changelog()

    status, body = _page(monkeypatch, changelog)
    assert asked == ["orch-segment_sizes-changelog"]
    assert status == 200
    assert body["cluster_wide"] is True
    assert body["partitions_here"] == [1]
    (row,) = body["campaigns"]
    shown = ("campaign", "status", "segment", "audience", "scheduled", "sent", "suppressed", "late")
    assert [row[k] for k in shown] == ["vip_preview", "active", "vip", 5, 4, 3, 1, 1]
    assert row["unsent"] == {"not_subscribed": 1}
    here = row["here"]
    assert [here[k] for k in ("audience", "scheduled", "sent", "suppressed", "late")] == [3, 2, 2, 0, 1]
    assert here["unsent"] == {}


def test_the_page_without_the_broker_says_so_with_what_this_worker_knows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def changelog(settings: Any, topic: str, timeout: float) -> list[Any]:
        raise OSError("broker down")

    status, body = _page(monkeypatch, changelog)
    assert status == 200
    assert body["cluster_wide"] is False
    (row,) = body["campaigns"]
    assert (row["audience"], row["scheduled"], row["sent"], row["late"]) == (3, 2, 2, 1)
    assert row["here"]["sent"] == 2


def test_campaigns_from_state_keeps_the_campaigns_of_the_file(simulated: tuple[Path, dict[str, Any]]) -> None:
    rows = campaigns_from_state(simulated[0])
    assert [(r["campaign"], r["audience"], r["sent"]) for r in rows] == [("vip_preview", 5, 3)]
