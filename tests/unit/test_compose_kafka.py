"""The compose Kafka's SASL/ACL setup is the local secure broker's: deploy/kafka/compose-kafka.sh
(rendering only) gives the same logins, mechanisms and authorizer as
jax_exec.kafka_security.secure_properties, every principal of the ACL table has a secret, and
each service authenticates as the principal its stages' ACLs are written for.

No SASL broker is started here: tests/integration/test_kafka_acls.py runs one from the same
secure_properties; the compose stack's processes run in tests/integration/test_compose_services.py
against the PLAINTEXT test broker."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from jax_exec.kafka_acls import PRINCIPALS, STAGE_RIGHTS
from jax_exec.kafka_compose import principal_of
from jax_exec.kafka_security import credentials_file, ensure_credentials, secure_properties

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SCRIPT = ROOT / "deploy" / "kafka" / "compose-kafka.sh"
SASL_LISTENERS = ("sasl_plaintext", "host")


def _render(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    passwords = ensure_credentials(tmp_path / "home")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for principal in PRINCIPALS:  # as compose mounts them: /run/secrets/kafka-<principal>
        shutil.copy(credentials_file(tmp_path / "home", principal), secrets / f"kafka-{principal}")
    env = {k: str(v) for k, v in SERVICES["kafka"]["environment"].items()}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=True,
                            env={"PATH": os.environ["PATH"], **env, "JAX_KAFKA_RENDER_ONLY": "1",
                                 "JAX_KAFKA_SECRETS": str(secrets)})
    props = dict(line.split("=", 1) for line in result.stdout.splitlines()
                 if line and not line.startswith("#"))
    return props, passwords


def _logins(jaas: str) -> tuple[str, list[str]]:
    """A JAAS line as (login module, its options in any order)."""
    module, *options = jaas.rstrip(";").split()
    return module, sorted(options)


def test_the_compose_broker_logs_in_as_the_local_secure_broker(tmp_path: Path) -> None:
    props, passwords = _render(tmp_path)
    local = secure_properties("127.0.0.1", 9092, 9093, passwords)
    same = ["sasl.enabled.mechanisms", "sasl.mechanism.inter.broker.protocol",
            "sasl.mechanism.controller.protocol",
            "listener.name.controller.sasl.enabled.mechanisms",
            "listener.name.controller.plain.sasl.jaas.config", "authorizer.class.name",
            "super.users", "allow.everyone.if.no.acl.found", "inter.broker.listener.name"]
    for key in same:
        assert props[key] == local[key], key
    for listener in SASL_LISTENERS:  # every client listener: the same SCRAM and PLAIN logins
        for mechanism in ("scram-sha-512", "plain"):
            assert (_logins(props[f"listener.name.{listener}.{mechanism}.sasl.jaas.config"])
                    == _logins(local[f"listener.name.sasl_plaintext.{mechanism}.sasl.jaas.config"]))
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}  # no listener without a login
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "false"
    print(f"\ncompose Kafka: {len(props)} properties; {len(same)} keys and "
          f"{2 * len(SASL_LISTENERS)} listener logins equal to kafka_security's")


def test_every_principal_has_a_secret_and_the_broker_mounts_them_all() -> None:
    declared = COMPOSE["secrets"]
    assert set(declared) == {f"kafka-{p}" for p in PRINCIPALS}
    for principal in PRINCIPALS:
        assert declared[f"kafka-{principal}"]["file"] == \
            f"./.local/kafka/credentials/{principal}.json"
    assert set(SERVICES["kafka"]["secrets"]) == set(declared)
    assert SERVICES["kafka-setup"]["secrets"] == ["kafka-admin"]
    assert SERVICES["kafka-setup"]["environment"]["KAFKA_CREDENTIALS_FILE"] == \
        "/run/secrets/kafka-admin"


@pytest.mark.parametrize("name", ["validation", "trading", "reconciliation", "audit"])
def test_each_stage_service_authenticates_as_its_stages_principal(name: str) -> None:
    service = SERVICES[name]
    principal = principal_of([str(a) for a in service["command"]])
    assert principal is not None
    assert service["environment"]["KAFKA_CREDENTIALS_FILE"] == f"/run/secrets/kafka-{principal}"
    assert service["secrets"] == [f"kafka-{principal}"]
    stages = [str(a) for i, a in enumerate(service["command"][1:]) if
              service["command"][i] == "--stage"]
    rights = PRINCIPALS[principal]
    for stage in stages:  # the principal may do whatever each of its stages does
        assert STAGE_RIGHTS[stage].read <= rights.read, (name, stage)
        assert STAGE_RIGHTS[stage].write <= rights.write, (name, stage)


def test_the_api_has_its_two_principals() -> None:
    api = SERVICES["api"]
    directory = api["environment"]["KAFKA_CREDENTIALS_DIR"]
    mounted = {s["source"]: f"/run/secrets/{s['target']}" for s in api["secrets"]}
    assert mounted == {"kafka-upstream": f"{directory}/upstream.json",
                       "kafka-operator": f"{directory}/operator.json"}
