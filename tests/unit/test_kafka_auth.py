"""Kafka client authentication from settings, and the principal/ACL table (no broker)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from agents.kafka_auth import NO_AUTH, KafkaAuth, KafkaAuthError
from jax_exec.kafka_acls import (
    PRINCIPALS,
    STAGE_RIGHTS,
    Operation,
    Pattern,
    Resource,
    bindings,
    markdown_table,
    stage_principal,
    writers,
)
from jax_exec.kafka_security import (
    client_auth,
    credentials_file,
    ensure_credentials,
    merge_properties,
    secure_properties,
)
from jax_exec.settings import Settings

SCRAM = KafkaAuth("SASL_PLAINTEXT", "SCRAM-SHA-512", "sizing", "s3cret")


def test_plaintext_adds_nothing() -> None:
    assert NO_AUTH.aiokafka_kwargs() == {}
    assert NO_AUTH.faust_credentials() is None


def test_sasl_gives_aiokafka_the_four_settings() -> None:
    assert SCRAM.aiokafka_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "sizing", "sasl_plain_password": "s3cret"}


def test_faust_hands_aiokafka_the_same_settings() -> None:
    credentials = SCRAM.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    through_faust = credentials_to_aiokafka_auth(credentials)
    assert {k: v for k, v in through_faust.items() if v is not None} == SCRAM.aiokafka_kwargs()


def test_sasl_ssl_carries_a_tls_context_both_ways() -> None:
    auth = KafkaAuth("SASL_SSL", "SCRAM-SHA-256", "u", "p")
    assert auth.aiokafka_kwargs()["ssl_context"] is not None
    through_faust = credentials_to_aiokafka_auth(auth.faust_credentials())
    assert through_faust["security_protocol"] == "SASL_SSL"
    assert through_faust["sasl_mechanism"] == "SCRAM-SHA-256"


def test_the_password_is_never_in_a_repr() -> None:
    assert "s3cret" not in repr(SCRAM)
    assert "s3cret" not in repr(SCRAM.faust_credentials())


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"protocol": "SASL_PLAINTEXT"}, "needs a username and a password"),
    ({"protocol": "SASL_PLAINTEXT", "username": "u", "password": "p", "mechanism": "MD5"},
     "SASL mechanism 'MD5'"),
    ({"protocol": "SSL"}, "security protocol 'SSL'"),
])
def test_settings_that_cannot_connect_are_refused(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(KafkaAuthError, match=match):
        KafkaAuth(**kwargs)  # type: ignore[arg-type]


def test_credentials_file_fields_are_checked() -> None:
    with pytest.raises(KafkaAuthError, match="unknown credentials field"):
        KafkaAuth.from_mapping({"username": "u", "password": "p", "pasword": "typo"})


def test_client_auth_order_of_precedence(tmp_path: Path) -> None:
    plain = Settings(jax_home=tmp_path)
    assert client_auth(plain, "upstream") == NO_AUTH
    explicit = Settings(jax_home=tmp_path, kafka_username="bob", kafka_password="pw",
                        kafka_sasl_mechanism="SCRAM-SHA-256")
    assert client_auth(explicit, "upstream").aiokafka_kwargs()["sasl_plain_username"] == "bob"
    # a local broker configured with SASL: each command's own generated principal
    ensure_credentials(tmp_path)
    config = tmp_path / "kafka" / "server.properties"
    config.write_text("listeners=SASL_PLAINTEXT://127.0.0.1:9092\n")
    assert client_auth(plain, "upstream").username == "upstream"
    assert client_auth(plain, "operator").username == "operator"
    file = Settings(jax_home=tmp_path, kafka_credentials_file=credentials_file(tmp_path, "audit"))
    assert client_auth(file, "upstream").username == "audit"
    # an explicit PLAINTEXT wins over the local broker's files
    assert client_auth(Settings(jax_home=tmp_path, kafka_security_protocol="PLAINTEXT"),
                       "upstream") == NO_AUTH


def test_generated_credentials_are_private_and_stable(tmp_path: Path) -> None:
    first = ensure_credentials(tmp_path)
    assert set(first) == set(PRINCIPALS)
    assert ensure_credentials(tmp_path) == first
    path = credentials_file(tmp_path, "sizing")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["username"] == "sizing"
    assert len(set(first.values())) == len(first)


def test_only_the_sizing_stage_and_the_all_stages_worker_write_order_intents() -> None:
    assert writers("order-intents") == ["sizing", "worker"]
    assert writers("fills") == ["reconciliation", "worker"]
    assert writers("approvals") == ["upstream"]
    assert writers("signals") == ["upstream"]
    assert set(writers("control")) == {"control", "operator", "worker"}
    assert PRINCIPALS["audit"].write == frozenset()
    assert not PRINCIPALS["upstream"].write - {"signals", "approvals"}


def test_the_worker_holds_the_union_of_the_stages() -> None:
    for rights in STAGE_RIGHTS.values():
        assert rights.read <= PRINCIPALS["worker"].read
        assert rights.write <= PRINCIPALS["worker"].write


def test_bindings_name_prefixed_topics_and_the_stage_groups() -> None:
    acl = bindings("t1-", "jax")
    assert all(b.name.startswith("t1-") for b in acl if b.resource is Resource.TOPIC)
    groups = {(b.principal, b.pattern, b.name) for b in acl if b.resource is Resource.GROUP}
    assert ("sizing", Pattern.LITERAL, "jax-sizing") in groups
    assert ("worker", Pattern.PREFIXED, "jax") in groups
    assert not [g for g in groups if g[0] in ("upstream", "operator", "admin")]
    assert {b.operation for b in acl} == {Operation.READ, Operation.WRITE}
    assert stage_principal({"submission"}) == "submission"
    assert stage_principal({"sizing", "submission"}) == "worker"


def test_secure_properties_override_the_plaintext_template() -> None:
    props = secure_properties("127.0.0.1", 9092, 9093, {"admin": "a", "sizing": "b"})
    merged = merge_properties("listeners=PLAINTEXT://127.0.0.1:9092\nnode.id=1\n", props)
    assert "\nlisteners=PLAINTEXT" not in f"\n{merged}"
    assert "listeners=SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" in merged
    assert "allow.everyone.if.no.acl.found=false" in merged
    assert "User:ANONYMOUS" not in merged  # the controller listener authenticates too
    assert 'user_sizing="b"' in merged


def test_readme_table_is_the_acl_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme
