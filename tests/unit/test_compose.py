"""docker-compose.yml cannot run here (no Docker engine): this checks what it declares; the
integration test tests/integration/test_compose_services.py runs each service as a process."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {n: s for n, s in SERVICES.items() if "build" in s and s.get("restart") != "no"}


def test_compose_names_the_stack() -> None:
    assert set(SERVICES) == {"kafka", "kafka-setup", "clickhouse", "simulator", "validation",
                             "trading", "reconciliation", "audit", "api", "prometheus",
                             "grafana"}
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert SERVICES["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert SERVICES["simulator"]["command"] == ["jax-exec", "sim"]  # settings: SIM_* only


def test_every_built_service_binds_all_interfaces_and_serves_metrics() -> None:
    for name, svc in OURS.items():
        env = svc["environment"]
        assert env["METRICS_HOST"] == "0.0.0.0", name
        assert int(env["METRICS_PORT"]) == 9100, name
        assert "healthcheck" in svc, name
    assert SERVICES["audit"]["environment"]["WEB_HOST"] == "0.0.0.0"
    assert SERVICES["api"]["environment"]["API_HOST"] == "0.0.0.0"
    assert SERVICES["simulator"]["environment"]["SIM_HOST"] == "0.0.0.0"


def test_the_workers_reach_kafka_clickhouse_and_the_simulator_by_service_name() -> None:
    for name in ("validation", "trading", "reconciliation", "audit", "api"):
        env = OURS[name]["environment"]
        assert env["KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert env["CLICKHOUSE_URL"].startswith("http://clickhouse:8123"), name
        assert env["IB_HOST"] == "simulator", name
    ids = [OURS[n]["environment"].get("IB_CLIENT_ID") for n in ("trading", "reconciliation")]
    assert len(set(ids)) == len(ids)


def test_prometheus_scrapes_every_built_service() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    assert targets == {f"{name}:9100" for name in OURS}
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"JaxConsumerLag", "JaxVenueDown", "JaxTradingHalted", "JaxDeadLetters"} <= names


def test_the_dashboard_only_charts_metrics_that_exist() -> None:
    from prometheus_client import REGISTRY

    import agents.metrics  # noqa: F401  (registers the collectors)

    known = {m.name for m in REGISTRY.collect()} | {
        "jax_consumer_lag", "jax_audit_lag_seconds", "jax_audit_buffered_rows",
        "jax_trading_state", "up"}
    dash = json.loads((ROOT / "deploy/grafana/dashboards/jax-execution.json").read_text())
    import re

    for panel in dash["panels"]:
        for target in panel["targets"]:
            for metric in re.findall(r"\b(jax_[a-z_]+|up)\b", target["expr"]):
                base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
                assert base in known, (panel["title"], metric)


def test_compose_kafka_version_matches_the_local_pin() -> None:
    from jax_exec.kafka_local import pinned_version

    assert SERVICES["kafka"]["image"] == f"apache/kafka:{pinned_version()}"


def test_dockerfile_installs_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for package in ("schemas", "agents", "brokers", "store", "jax_exec", "deploy"):
        assert f"COPY {package} {package}" in text
