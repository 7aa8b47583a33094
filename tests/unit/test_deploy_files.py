"""The deployment files: promtool on the Prometheus files, PromQL that names only exported metrics,
and the docker-compose stack and Kubernetes manifests checked structurally (no Docker engine here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import ENV_PREFIX, Settings, TopicNames, load_settings
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.core.journey import load_journey_file
from orchestrator.kafka.local_broker import DEFAULT_KAFKA_VERSION
from orchestrator.runtime.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "orchestrator.json"
PROMETHEUS_BUILTIN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        message = "promtool not found (Debian package prometheus; `make debs` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return tool


def _run(*args: str, cwd: Path = PROM) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


# -- promtool ----------------------------------------------------------------------------------------
def test_promtool_checks_the_alert_rules() -> None:
    out = _run(_promtool(), "check", "rules", "alerts.yml")
    assert "SUCCESS: 9 rules found" in out


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-kubernetes.yml"])
def test_promtool_checks_the_scrape_configs(config: str) -> None:
    out = _run(_promtool(), "check", "config", config)
    assert "is valid prometheus config file syntax" in out


def test_promtool_rule_tests_pass() -> None:
    out = _run(_promtool(), "test", "rules", "tests/alerts_test.yml")
    assert "SUCCESS" in out


def test_every_alert_has_a_rule_test_and_a_runbook_section() -> None:
    alerts = [r["alert"] for g in _yaml(PROM / "alerts.yml")["groups"] for r in g["rules"]]
    tested = {t["alertname"] for case in _yaml(PROM / "tests" / "alerts_test.yml")["tests"]
              for t in case["alert_rule_test"]}  # fmt: skip
    runbook = (ROOT / "docs" / "operations.md").read_text()
    alerts_section = re.split(r"^## .*Alerts$", runbook, flags=re.M)[1]
    for name in alerts:
        assert name in tested
        assert f"### {name}" in runbook or name in alerts_section
    required = {"OrchestratorWorkerDown", "OrchestratorConsumerLagGrowing", "OrchestratorDeadLetterRate",
                "OrchestratorTimersLate", "OrchestratorNoEvents"}  # fmt: skip
    assert required <= set(alerts)


# -- PromQL names ------------------------------------------------------------------------------------
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan", "atan2"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: strings, label matchers, ranges, label lists, function
    names, keywords and Grafana variables are taken out; what is left are metric names."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        tok = m.group(0)
        if e[m.end() :].lstrip().startswith("(") or tok.lower() in _KEYWORDS:
            continue
        names.add(tok)
    return names


def test_metric_name_parser() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(orchestrator_x_bucket{clock="wall", a=~"b|c"}[$__rate_interval])))'
        " > 1e-9 and on (topic) deriv(sum by (topic) (lag_total offset 5m)[10m:1m]) / ignoring (x) up"
    )
    assert metric_names(expr) == {"orchestrator_x_bucket", "lag_total", "up"}
    assert metric_names('sum(increase(orchestrator_goals_total{journey="$journey"}[$__range]))') == {
        "orchestrator_goals_total"
    }


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v.get("definition")]
    return exprs


def _alert_exprs() -> list[str]:
    return [r["expr"] for g in _yaml(PROM / "alerts.yml")["groups"] for r in g["rules"]]


def _label_values_metric(expr: str) -> str:
    m = re.fullmatch(r"label_values\((\w+),\s*\w+\)", expr)
    return m.group(1) if m else ""


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_query_names_only_exported_metrics(source: str) -> None:
    exported = WorkerMetrics().names() | ConnectorMetrics().names() | PROMETHEUS_BUILTIN
    exprs = _dashboard_exprs() if source == "dashboard" else _alert_exprs()
    assert len(exprs) >= (25 if source == "dashboard" else 7)
    used: set[str] = set()
    for expr in exprs:
        names = {_label_values_metric(expr)} if expr.startswith("label_values(") else metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} names {sorted(names - exported)}, not exported by the worker"
        used |= names
    if source == "dashboard":
        needed = {
            "orchestrator_journey_entries_total",
            "orchestrator_step_transitions_total",
            "orchestrator_goals_total",
            "orchestrator_raw_messages_total",
            "orchestrator_event_to_action_seconds_bucket",
            "orchestrator_consumer_lag",
            "orchestrator_invalid_events_total",
            "orchestrator_policy_decisions_total",
            "orchestrator_segment_members",
            "orchestrator_campaign_outcomes_total",
            "orchestrator_campaign_released_total",
            "orchestrator_campaigns_loaded",
            "orchestrator_connector_sent_total",
            "orchestrator_connector_failed_total",
            "orchestrator_connector_send_seconds_bucket",
            "orchestrator_connector_retries_total",
            "orchestrator_connector_unsubscribes_total",
        }
        assert needed <= used


def test_the_check_catches_an_unknown_metric() -> None:
    exported = WorkerMetrics().names()
    assert metric_names("rate(orchestrator_actions_sent_total[5m])") - exported == {
        "orchestrator_actions_sent_total"
    }


def test_dashboard_panels_use_the_datasource_variable_and_have_unique_ids() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert p["targets"]
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "journey"} <= variables


@pytest.mark.parametrize("registry", ["worker", "connector"])
def test_every_metric_is_documented(registry: str) -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    metrics = (
        WorkerMetrics(process_metrics=False)
        if registry == "worker"
        else ConnectorMetrics(process_metrics=False)
    )
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in doc, f"{name} is not in docs/metrics.md"


# -- docker compose -------------------------------------------------------------------------------
def _env_names_are_settings(env: dict[str, Any], where: str) -> None:
    fields = {ENV_PREFIX + f.upper() for f in Settings.model_fields if f != "topics"}
    fields |= {ENV_PREFIX + "TOPIC_" + t.upper() for t in TopicNames.model_fields}
    fields.add(ENV_PREFIX + "CONFIG")
    for name in env:
        if name.startswith(ENV_PREFIX):
            assert name in fields, f"{where}: {name} is no setting of orchestrator/config.py"
    load_settings(environ={k: str(v) for k, v in env.items() if k.startswith(ENV_PREFIX)})


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = _yaml(ROOT / "docker-compose.yml")
    return data


def test_compose_has_the_whole_stack() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "kafka", "init", "worker", "demo-producer", "connector", "prometheus", "grafana", "mailpit",
        "connector-email", "connector-sms", "connector-push", "connector-webhooks",
    }  # fmt: skip
    assert services["connector-sms"]["profiles"] == ["sms"]
    assert services["connector-push"]["profiles"] == ["push"]
    # the real email connector and its mail catcher only with --profile email
    assert services["connector-email"]["profiles"] == services["mailpit"]["profiles"] == ["email"]
    kafka = services["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert tag.split(".")[0] == DEFAULT_KAFKA_VERSION.split(".")[0]
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "9092:9092" in kafka["ports"]
    assert "9090:9090" in services["prometheus"]["ports"]
    assert "3000:3000" in services["grafana"]["ports"]
    for name in ("init", "worker", "demo-producer", "connector"):
        assert services[name]["build"] == "."
        assert services[name]["depends_on"]
    assert services["init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert (ROOT / "Dockerfile").is_file()


def test_compose_environment_names_are_settings_and_reach_the_broker() -> None:
    services = _compose()["services"]
    kafka_env = services["kafka"]["environment"]
    internal = next(
        a for a in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",") if a.startswith("INTERNAL://")
    )
    for name in ("init", "worker", "demo-producer", "connector", "connector-email", "connector-sms",
                 "connector-push", "connector-webhooks"):  # fmt: skip
        env = services[name]["environment"]
        _env_names_are_settings(env, f"docker-compose.yml service {name}")
        assert env["ORCH_BOOTSTRAP_SERVERS"] == internal.removeprefix("INTERNAL://")
    worker = services["worker"]["environment"]
    assert worker["ORCH_WEB_HOST"] == "0.0.0.0"
    assert str(worker["ORCH_WEB_PORT"]) in services["worker"]["expose"]
    # the API token comes from an env file that git and the image never carry
    env_file = services["worker"]["env_file"][0]
    assert env_file["path"] == "./orchestrator.env"
    assert "orchestrator.env" in (ROOT / ".gitignore").read_text().split()
    assert "orchestrator.env" in (ROOT / ".dockerignore").read_text().split()
    assert "ORCH_API_TOKEN" not in worker
    email = services["connector-email"]
    assert email["environment"]["ORCH_SMTP_HOST"] == "mailpit"
    assert email["environment"]["ORCH_CONNECTOR_WEB_HOST"] == "0.0.0.0"
    assert "ORCH_UNSUBSCRIBE_KEY" not in email["environment"]  # (from orchestrator.env)
    assert email["env_file"][0]["path"] == "./orchestrator.env"


def test_compose_mounts_files_that_exist_and_agree() -> None:
    services = _compose()["services"]
    mounts: dict[str, str] = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            host, _, rest = volume.partition(":")
            if host.startswith("./"):
                assert (ROOT / host).exists(), f"{name} mounts {host}, which does not exist"
                mounts[rest.split(":")[0]] = host
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./deploy/prometheus/alerts.yml"
    # Prometheus scrapes the compose service "worker" on the worker's port.
    prom = _yaml(PROM / "prometheus.yml")
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "orchestrator")
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["worker"]
    assert str(sd["port"]) == str(services["worker"]["environment"]["ORCH_WEB_PORT"])
    # Grafana: the provider reads the directory the dashboards are mounted on; the data source is
    # the prometheus service.
    provider = _yaml(DEPLOY / "grafana/provisioning/dashboards/orchestrator.yml")["providers"][0]
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    source = _yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    assert services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(
        provider["options"]["path"]
    )


def test_compose_init_deploys_journeys_that_exist_and_validate() -> None:
    command = " ".join(_compose()["services"]["init"]["command"])
    assert "orchestrator topics create" in command
    files = re.findall(r"journeys/\S+\.yaml", command)
    assert len(files) == 4
    for f in files:
        assert load_journey_file(ROOT / f).id


def test_compose_commands_exist_in_the_cli() -> None:
    from orchestrator.cli import build_parser

    parser = build_parser()
    connector = _compose()["services"]["connector"]["command"]
    assert parser.parse_args(connector).command == "connector"
    for channel in ("email", "sms", "push", "webhooks"):
        args = parser.parse_args(_compose()["services"][f"connector-{channel}"]["command"])
        assert (args.command, args.connector) == ("connector", channel)
    push = _compose()["services"]["connector-push"]
    mounted = push["volumes"][0].split(":")[1]
    assert push["environment"]["ORCH_FCM_CREDENTIALS_FILE"] == mounted
    assert "firebase-service-account.json" in (ROOT / ".gitignore").read_text().split()
    assert parser.parse_args(_compose()["services"]["worker"]["command"]).command == "worker"


def test_dockerfile_runs_the_worker_on_the_exposed_port() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    env = dict(re.findall(r"(ORCH_\w+)=(\S+)", text))
    _env_names_are_settings(env, "Dockerfile")
    assert f"EXPOSE {env['ORCH_WEB_PORT']}" in text
    assert 'ENTRYPOINT ["orchestrator"]' in text
    assert 'CMD ["worker"]' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    for copied in re.findall(r"^COPY (?!--)(\S+)", text, re.M):
        assert (ROOT / copied).exists()
        assert copied not in ignored


# -- Kubernetes --------------------------------------------------------------------------------------
def _k8s() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name.startswith("connector-"):
            continue  # (the connectors' files: several documents each, checked on their own)
        doc = _yaml(path)
        out[doc["kind"]] = doc
    return out


LINKS = {"ORCH_UNSUBSCRIBE_KEY": "orchestrator-connector-links"}
"""The key that signs every connector's links (unsubscribe, open, click, receipts): one Secret for all."""
CONNECTOR_SECRETS = {
    "email": {"ORCH_SMTP_PASSWORD": "orchestrator-connector-email", **LINKS},
    "sms": {"ORCH_TWILIO_AUTH_TOKEN": "orchestrator-connector-sms", **LINKS},
    "push": LINKS,  # (and the service-account file: a Secret mounted as a volume)
    "webhooks": {"ORCH_TWILIO_AUTH_TOKEN": "orchestrator-connector-sms", **LINKS},
}


@pytest.mark.parametrize("channel", sorted(CONNECTOR_SECRETS))
def test_k8s_connectors_are_complete_and_consistent(channel: str) -> None:
    from orchestrator.cli import build_parser

    path = DEPLOY / "k8s" / f"connector-{channel}.yaml"
    docs = {d["kind"]: d for d in yaml.safe_load_all(path.read_text())}
    assert set(docs) == {"ConfigMap", "Deployment", "Service"}
    assert path.name in _yaml(DEPLOY / "k8s" / "kustomization.yaml")["resources"]
    config = docs["ConfigMap"]["data"]
    _env_names_are_settings(config, f"deploy/k8s/{path.name}")
    secret_names = {"ORCH_SMTP_PASSWORD", "ORCH_UNSUBSCRIBE_KEY", "ORCH_TWILIO_AUTH_TOKEN"}
    assert not secret_names & set(config)  # (secrets from a Secret, never the ConfigMap)
    assert config["ORCH_CONNECTOR_WEB_HOST"] == "0.0.0.0"
    pod = docs["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.connector) == ("connector", channel)
    refs = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
    assert refs == ["orchestrator", docs["ConfigMap"]["metadata"]["name"]]
    # (the Secret is made by the operator: kubectl create secret, as the file's comment says)
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])}
    assert from_secret == CONNECTOR_SECRETS[channel]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert str(ports["http"]) == config["ORCH_CONNECTOR_WEB_PORT"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for mount in container.get("volumeMounts", []):
        assert any(v["name"] == mount["name"] for v in pod["spec"]["volumes"])
        if channel == "push":
            assert config["ORCH_FCM_CREDENTIALS_FILE"].startswith(mount["mountPath"] + "/")
    svc = docs["Service"]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["clusterIP"] == "None"
    prom = _yaml(PROM / "prometheus-kubernetes.yml")
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "orchestrator-connectors")
    sd = job["dns_sd_configs"][0]
    assert f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local" in sd["names"]
    assert str(sd["port"]) == config["ORCH_CONNECTOR_WEB_PORT"]


def test_k8s_manifests_are_complete_and_consistent() -> None:
    k = _k8s()
    kustomization = k["Kustomization"]
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file()
    config = k["ConfigMap"]["data"]
    _env_names_are_settings(config, "deploy/k8s/configmap.yaml")
    assert config["ORCH_WEB_HOST"] == "0.0.0.0"
    sts = k["StatefulSet"]
    pod = sts["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert str(ports["http"]) == config["ORCH_WEB_PORT"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["envFrom"][0]["configMapRef"]["name"] == k["ConfigMap"]["metadata"]["name"]
    # secrets never in the ConfigMap; the API token and erasure key from the Secret orchestrator-api
    assert not {"ORCH_API_TOKEN", "ORCH_ERASURE_KEY", "ORCH_SASL_PASSWORD"} & set(config)
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert from_secret == {"ORCH_API_TOKEN": "orchestrator-api", "ORCH_ERASURE_KEY": "orchestrator-api"}
    mount = container["volumeMounts"][0]
    assert mount["mountPath"] == config["ORCH_DATA_DIR"]
    assert mount["name"] == sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    labels = pod["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = k["Service"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    monitor = k["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert svc["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "orchestrator"
    assert k["Job"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]
    # Prometheus on Kubernetes finds the workers through the headless Service's DNS name.
    prom = _yaml(PROM / "prometheus-kubernetes.yml")
    sd = prom["scrape_configs"][0]["dns_sd_configs"][0]
    assert sd["names"] == [f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"]
    assert str(sd["port"]) == config["ORCH_WEB_PORT"]
    notes = (DEPLOY / "k8s" / "README.md").read_text()
    assert "## Scaling with partitions" in notes
