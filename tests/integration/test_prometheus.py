"""A real Prometheus server (Debian's binary, on loopback) scrapes a real worker that ran a journey:
PromQL answers the expected values, the project's alert rules load and evaluate, and every dashboard
query runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import Settings
from orchestrator.kafka.local_broker import free_port
from orchestrator.testing import WorkerProcess, wait_until
from tests.integration.metrics_helpers import deploy_probe, produce_probe

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "orchestrator.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


class Prometheus:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as resp:
            return json.loads(resp.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"prometheus exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.HTTPError):
            return False


@pytest.fixture
def prometheus(settings: Settings, tmp_path: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        message = "the prometheus server is not installed (Debian package prometheus; `make debs`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "orchestrator",
                "static_configs": [{"targets": [f"{settings.web_host}:{settings.web_port}"]}],
            }
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_until(server.ready, timeout=60, interval=0.2, what="prometheus to be ready")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _substitute(expr: str) -> str:
    for var, value in (("$__rate_interval", "15s"), ("$__range", "5m"), ("$journey", "probe")):
        expr = expr.replace(var, value)
    return expr


def test_prometheus_scrapes_the_worker_and_promql_answers(
    settings: Settings, worker: WorkerProcess, prometheus: Prometheus, tmp_path: Path
) -> None:
    wait_until(
        lambda: prometheus.scalar('up{job="orchestrator"}') == 1,
        timeout=30,
        what="the worker scraped (up == 1)",
    )
    assert prometheus.scalar("sum(orchestrator_invalid_events_total)") == 0
    # The worker creates a deployed journey's series at 0, so Prometheus sees each counter before its
    # first increment and increase() counts that one too.
    deploy_probe(settings, tmp_path)
    wait_until(
        lambda: prometheus.scalar('orchestrator_step_transitions_total{journey="probe", step="nudge"}') == 0,
        timeout=30,
        what="the probe journey's series at 0",
    )
    produce_probe(settings)
    seen: dict[str, Any] = {}

    def actions_counted() -> bool:
        seen["actions"] = prometheus.scalar('sum(orchestrator_actions_total{journey="probe"})')
        return bool(seen["actions"] == 6)

    try:
        wait_until(actions_counted, timeout=60, interval=0.5, what="6 probe actions in Prometheus")
    except TimeoutError:
        raise AssertionError(f"sum(orchestrator_actions_total) is {seen['actions']}, not 6") from None
    assert prometheus.scalar('sum(orchestrator_actions_total{channel="sms"})') == 3
    assert prometheus.scalar('orchestrator_invalid_events_total{reason="not_json"}') == 1
    assert prometheus.scalar("sum(orchestrator_journey_entries_total)") == 3
    assert prometheus.scalar('orchestrator_journey_deployment_info{journey="probe"}') == 1
    wait_until(
        lambda: prometheus.scalar("sum(orchestrator_timer_lateness_seconds_count)") == 6,
        timeout=30,
        what="3 timers counted on both clocks",
    )

    # The project's alert rules loaded and evaluate against the live series without errors. One raw
    # message in six was dead-lettered: OrchestratorDeadLetterRate is pending (it fires after 10
    # minutes); every other rule is quiet on this healthy worker.
    def rules_evaluated() -> list[dict[str, Any]] | None:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else None

    rules = wait_until(rules_evaluated, timeout=30, what="the alert rules evaluated")
    assert len(rules) == 9
    states = {r["name"]: r["state"] for r in rules}
    assert states.pop("OrchestratorDeadLetterRate") == "pending"
    assert set(states.values()) == {"inactive"}

    # Every dashboard query runs on a real Prometheus.
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            prometheus.query(_substitute(target["expr"]))
    # The dashboard's funnel: increase() over the range extrapolates a little past the samples.
    query = 'sum by (step) (increase(orchestrator_step_transitions_total{journey="$journey"}[$__range]))'
    funnel = {r["metric"]["step"]: float(r["value"][1]) for r in prometheus.query(_substitute(query))}
    assert set(funnel) == {"hello", "pause", "nudge"}
    assert all(3 <= v < 6 for v in funnel.values()), funnel
