"""The weekly refit CronJob (deploy/k8s/model-refit-cronjob.yaml): its shell computes the times the
commands take, and its `orchestrator fit` and `orchestrator deploy` lines parse with the real CLI."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import build_parser
from orchestrator.learning.fit import load_journeys

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _cronjob() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((K8S / "model-refit-cronjob.yaml").read_text())
    return doc


def _script() -> str:
    container = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c"]
    script: str = container["args"][0]
    return script


def _variables() -> dict[str, str]:
    """The shell's own values of now, from, at and version (GNU date, as in the image)."""
    if shutil.which("date") is None:
        pytest.skip("no date command")
    setup = "\n".join(line for line in _script().splitlines() if not line.startswith("orchestrator "))
    shown = setup + '\necho "$now|$from|$at|$version"'
    done = subprocess.run(["sh", "-c", shown], capture_output=True, text=True, check=True, timeout=10)
    now, start, at, version = done.stdout.strip().split("|")
    return {"now": now, "from": start, "at": at, "version": version}


def _commands() -> list[list[str]]:
    values = _variables()
    lines = [line for line in _script().splitlines() if line.startswith("orchestrator ")]
    out = []
    for line in lines:
        for name, value in values.items():
            line = line.replace(f'"${name}"', value)
        out.append(shlex.split(line)[1:])
    return out


def test_the_cronjob_runs_weekly_with_the_workers_image_and_config() -> None:
    job = _cronjob()
    assert job["kind"] == "CronJob"
    assert job["spec"]["schedule"] == "0 3 * * 1"  # Monday 03:00
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert "model-refit-cronjob.yaml" in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    workers = yaml.safe_load((K8S / "statefulset.yaml").read_text())["spec"]["template"]["spec"][
        "containers"
    ][0]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == workers["image"]
    refs = [e.get("configMapRef", e.get("secretRef", {})).get("name") for e in container["envFrom"]]
    assert refs == ["orchestrator", "orchestrator-kafka"]
    for mount in container["volumeMounts"]:
        assert any(v["name"] == mount["name"] for v in pod["volumes"])
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_commands_parse_with_the_real_cli() -> None:
    fit, deploy = _commands()
    parser = build_parser()
    args = parser.parse_args(fit)
    assert args.command == "fit"
    assert args.from_kafka is True
    assert args.to_ms - args.from_ms == 7 * 86_400_000
    assert args.version >= 20250101
    deployed = parser.parse_args(deploy)
    assert deployed.command == "deploy"
    assert [str(f) for f in deployed.files] == [str(args.output)]
    assert deployed.at.tzinfo is not None
    assert int(deployed.at.timestamp() * 1000) - args.to_ms == 3_600_000


def test_the_image_journeys_load_for_the_splits() -> None:
    fit, _ = _commands()
    folder = build_parser().parse_args(fit).journeys[0]
    assert str(folder) == "/opt/orchestrator/journeys"  # the Dockerfile copies journeys/ there
    assert "COPY journeys /opt/orchestrator/journeys" in (ROOT / "Dockerfile").read_text()
    assert any(j.id == "winback" for j in load_journeys([ROOT / "journeys"]))
