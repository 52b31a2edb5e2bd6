"""docker-compose cannot run here (no Docker engine); this checks that it parses and names the
stack: the official Kafka image in KRaft mode, the official ClickHouse server, worker, simulator."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_parses_and_names_the_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "clickhouse", "worker", "simulator"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    worker_env = services["worker"]["environment"]
    assert worker_env["KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert worker_env["CLICKHOUSE_URL"].startswith("http://clickhouse:8123")
    assert worker_env["IB_HOST"] == "simulator"
    assert services["simulator"]["command"][:2] == ["jax-exec", "sim"]


def test_compose_kafka_version_matches_the_local_pin() -> None:
    from jax_exec.kafka_local import pinned_version

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{pinned_version()}"


def test_dockerfile_installs_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for package in ("schemas", "agents", "brokers", "store", "jax_exec", "deploy"):
        assert f"COPY {package} {package}" in text
