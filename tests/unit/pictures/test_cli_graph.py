"""``orchestrator graph``: counts from a simulate report or from a worker's /funnels/ (with the API
token), the format from -o's extension or --format, clear errors for a bad report or a wrong token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from picture_helpers import JOURNEYS, example_counts, needs_dot, read_mermaid, read_svg

from orchestrator.cli import main

WELCOME = JOURNEYS / "welcome.yaml"


@needs_dot
def test_graph_with_a_simulate_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.json"
    events = JOURNEYS / "examples" / "welcome.events.jsonl"
    assert (
        main(["simulate", "--journeys", str(JOURNEYS), "--events", str(events), "--report", str(report)]) == 0
    )
    counts = orjson.loads(report.read_bytes())["journeys"]["welcome"]
    out = tmp_path / "welcome.svg"
    assert main(["graph", str(WELCOME), "--report", str(report), "-o", str(out)]) == 0
    pic = read_svg(out.read_text())
    assert f"{counts['entered']} entered" in pic.nodes["@entry"]
    assert f"{counts['steps']['welcome_sms']} arrived" in pic.nodes["welcome_sms"]
    assert str(counts["edges"]["wait_open>sms_allowed"]) in pic.edge_text("wait_open->sms_allowed")


def test_a_report_without_the_journey_draws_zeros_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    report.write_bytes(orjson.dumps({"journeys": {}}))
    assert main(["graph", str(WELCOME), "--report", str(report), "--format", "mermaid"]) == 0
    captured = capsys.readouterr()
    assert "no counts of journey 'welcome'" in captured.err
    assert "0 entered" in read_mermaid(captured.out).nodes["entry"][1]


def test_a_bad_report_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.json"
    report.write_text("not json")
    assert main(["graph", str(WELCOME), "--report", str(report), "--format", "dot"]) == 2
    assert "not a JSON report" in capsys.readouterr().err
    assert main(["graph", str(WELCOME), "--report", str(tmp_path / "none.json"), "--format", "dot"]) == 2
    assert "report not found" in capsys.readouterr().err


@pytest.fixture
def worker() -> Iterator[str]:
    """A stand-in for a worker's web server: /funnels/ with the welcome example's counts, token t0k."""
    body = {"journeys": {"welcome": example_counts("welcome", until=False)}, "cluster_wide": True}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != "Bearer t0k":
                self.send_response(401)
                self.end_headers()
                return
            data = orjson.dumps(body) if self.path == "/funnels/" else b'{"error": "no"}'
            self.send_response(200 if self.path == "/funnels/" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_graph_with_a_workers_funnels(
    worker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCH_API_TOKEN", "t0k")
    assert main(["graph", str(WELCOME), "--worker", worker, "--format", "mermaid"]) == 0
    pic = read_mermaid(capsys.readouterr().out)
    counts = example_counts("welcome", until=False)
    assert f"{counts['entered']} entered" in pic.nodes["entry"][1]
    for step, n in counts["occupancy"].items():
        assert f"now: {n}" in pic.nodes[f"s_{step}"][1]


def test_a_wrong_token_says_so(
    worker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCH_API_TOKEN", "wrong")
    assert main(["graph", str(WELCOME), "--worker", worker, "--format", "dot"]) == 2
    assert "401 unauthorized: wrong token" in capsys.readouterr().err
