"""The local broker with SASL/SCRAM and ACLs, and how every client of this project finds its
credentials.

`jax-exec kafka start --secure` (and `jax-exec run`, unless `--insecure`) runs the broker
with SCRAM-SHA-512 on its client listener, KRaft's StandardAuthorizer and
`allow.everyone.if.no.acl.found=false`. One password per principal (jax_exec.kafka_acls) is
generated under JAX_HOME/kafka/credentials/<principal>.json (0600, never printed); the SCRAM
users are written into the storage when it is formatted, so they exist at the first start.
The controller listener (loopback) authenticates with SASL/PLAIN as `admin`: it accepts
CreateAcls and AlterUserScramCredentials, so an anonymous one would be a way around the ACLs.
A broker formatted without users cannot gain them without an authenticated admin, so the
secure broker keeps its own storage (kafka/data-sasl) beside the PLAINTEXT one (kafka/data).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest

from agents.kafka_auth import NO_AUTH, KafkaAuth, KafkaAuthError
from jax_exec.kafka_acls import (
    ALLOW,
    ANY_PERMISSION,
    PRINCIPALS,
    Binding,
    Operation,
    Pattern,
    Resource,
    bindings,
)
from jax_exec.kafka_local import KafkaControlError, LocalKafka, _cluster_id, _java
from jax_exec.settings import Settings

MECHANISM = "SCRAM-SHA-512"
SECURE_MARK = "listeners=SASL_PLAINTEXT://"


def credentials_dir(home: Path) -> Path:
    return home / "kafka" / "credentials"


def credentials_file(home: Path, principal: str) -> Path:
    return credentials_dir(home) / f"{principal}.json"


def ensure_credentials(home: Path) -> dict[str, str]:
    """One password per principal, generated once (0600 files in a 0700 directory)."""
    folder = credentials_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    passwords: dict[str, str] = {}
    for principal in PRINCIPALS:
        path = credentials_file(home, principal)
        if not path.exists():
            body = {"principal": principal, "username": principal,
                    "password": secrets.token_urlsafe(24), "security_protocol": "SASL_PLAINTEXT",
                    "sasl_mechanism": MECHANISM}
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(body, out, indent=2)
        passwords[principal] = json.loads(path.read_text())["password"]
    return passwords


def load_credentials(path: Path) -> KafkaAuth:
    try:
        return KafkaAuth.from_mapping(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise KafkaAuthError(f"Kafka credentials {path}: {exc}") from None


def local_broker_secure(home: Path) -> bool:
    """Was the local broker under this JAX_HOME last configured with SASL?"""
    config = home / "kafka" / "server.properties"
    try:
        return SECURE_MARK in config.read_text()
    except OSError:
        return False


def client_auth(settings: Settings, principal: str) -> KafkaAuth:
    """How a client connects: KAFKA_CREDENTIALS_FILE, else KAFKA_CREDENTIALS_DIR/<principal>.json,
    else KAFKA_USERNAME/KAFKA_PASSWORD, else
    KAFKA_SECURITY_PROTOCOL; with none of them set, `principal`'s generated credentials when
    the local broker under JAX_HOME runs secure, else PLAINTEXT."""
    if settings.kafka_credentials_file is not None:
        return load_credentials(settings.kafka_credentials_file)
    if settings.kafka_credentials_dir is not None:
        return load_credentials(settings.kafka_credentials_dir / f"{principal}.json")
    protocol = settings.kafka_security_protocol
    if settings.kafka_username:
        password = settings.kafka_password.get_secret_value() if settings.kafka_password else None
        return KafkaAuth(protocol=protocol or "SASL_PLAINTEXT",
                         mechanism=settings.kafka_sasl_mechanism,
                         username=settings.kafka_username, password=password)
    if protocol is not None:
        return KafkaAuth(protocol=protocol, mechanism=settings.kafka_sasl_mechanism)
    if local_broker_secure(settings.jax_home):
        path = credentials_file(settings.jax_home, principal)
        if path.exists():
            return load_credentials(path)
        raise KafkaAuthError(f"the local broker runs with SASL but {path} is missing")
    return NO_AUTH


def secure_properties(host: str, port: int, controller_port: int, passwords: dict[str, str]
                      ) -> dict[str, str]:
    """What a secure broker sets on top of deploy/kafka/server.properties.template."""
    admin_password = passwords["admin"]
    plain = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
             f'username="admin" password="{admin_password}" user_admin="{admin_password}";')
    users = " ".join(f'user_{name}="{password}"' for name, password in passwords.items())
    plain_clients = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                     f"{users};")
    scram = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
             f'username="admin" password="{admin_password}";')
    return {
        "listeners": f"SASL_PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://{host}:{port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        # PLAIN too, for librdkafka before 2.6.1 (Debian 12's kcat): its SCRAM is refused by
        # Kafka 4 (confluentinc/librdkafka#4895). Same users, same ACLs; loopback only here.
        "sasl.enabled.mechanisms": f"{MECHANISM},PLAIN",
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        # KRaft controllers cannot use SCRAM (its credentials live in the metadata they serve)
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config": scram,
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": plain_clients,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "allow.everyone.if.no.acl.found": "false",
    }


def merge_properties(text: str, overrides: dict[str, str]) -> str:
    kept = [line for line in text.splitlines()
            if line.split("=", 1)[0].strip() not in overrides]
    return "\n".join([*kept, "# SASL/SCRAM and ACLs (jax-exec kafka start --secure)",
                      *(f"{k}={v}" for k, v in overrides.items())]) + "\n"


class SecureLocalKafka(LocalKafka):
    """The local broker with SASL/SCRAM and ACLs; its own storage, its own credentials."""

    @property
    def data_dir(self) -> Path:
        return self.base / "data-sasl"

    @property
    def admin_auth(self) -> KafkaAuth:
        return load_credentials(credentials_file(self.home, "admin"))

    def configure(self) -> None:
        passwords = ensure_credentials(self.home)
        super().configure()
        props = secure_properties(self.host, self.port, self.port + 1, passwords)
        self.config_file.write_text(merge_properties(self.config_file.read_text(), props))
        self.config_file.chmod(0o600)  # it holds the admin password

    def format_storage(self) -> bool:
        """Format once, with a SCRAM user per principal (users exist before the first start)."""
        if (self.data_dir / "meta.properties").exists():
            return False
        passwords = ensure_credentials(self.home)
        users = [arg for name, password in passwords.items() for arg in
                 ("--add-scram", f"{MECHANISM}=[name={name},password={password}]")]
        cmd = [_java(), "-cp", self.classpath(), *self._log_opts(), "kafka.tools.StorageTool",
               "format", "-t", _cluster_id(), "-c", str(self.config_file), "--standalone",
               *users]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:  # the tool's own output: it does not echo passwords
            raise KafkaControlError(f"formatting Kafka storage failed:\n{result.stderr[-3000:]}")
        return True

    def start(self, timeout: float = 90.0, *, tied: bool = False) -> int:
        if self.pid() is not None and not local_broker_secure(self.home):
            raise KafkaControlError(
                f"a PLAINTEXT broker from {self.base} runs on {self.bootstrap}: stop it "
                "(`jax-exec kafka stop`) before starting it with SASL, or use --insecure")
        return super().start(timeout, tied=tied)

    def wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise KafkaControlError(f"Kafka exited with {proc.returncode}:\n{self.log_tail()}")
            if self.reachable() and asyncio.run(_answers(self.bootstrap, self.admin_auth)):
                return
            time.sleep(0.3)
        raise KafkaControlError(f"Kafka not ready after {timeout:.0f}s:\n{self.log_tail()}")


def local_kafka(home: Path, bootstrap: str, secure: bool) -> LocalKafka:
    cls = SecureLocalKafka if secure else LocalKafka
    kafka = cls.from_bootstrap(home, bootstrap)
    if not secure and kafka.pid() is not None and local_broker_secure(home):
        raise KafkaControlError(f"the broker from {kafka.base} on {kafka.bootstrap} runs with "
                                "SASL: stop it first, or start with --secure")
    return kafka


async def _answers(bootstrap: str, auth: KafkaAuth) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                **auth.aiokafka_kwargs())
    try:
        await admin.start()
        await admin.describe_cluster()
        return True
    except Exception:
        return False
    finally:
        await admin.close()


# -- ACLs ------------------------------------------------------------------------------------


ACL_WAIT_SECONDS = 30.0


async def apply_acls(bootstrap: str, auth: KafkaAuth, prefix: str, app_id: str) -> int:
    """Create every ACL of the table (CreateAcls is idempotent) and wait until the broker's
    authorizer serves them all (a new ACL reaches it a moment after the controller commits
    it); return how many there are."""
    wanted = set(bindings(prefix, app_id))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000,
                                **auth.aiokafka_kwargs())
    async with asyncio.timeout(ACL_WAIT_SECONDS):
        await admin.start()
        try:
            await asyncio.gather(*(_create(admin, b) for b in sorted(wanted)))
            missing = wanted - await describe_acls(admin)
            while missing:
                await asyncio.sleep(0.2)
                missing -= await describe_acls(admin)
        finally:
            await admin.close()
    return len(wanted)


async def _create(admin: AIOKafkaAdminClient, b: Binding) -> None:
    response: Any = await admin._send_request(CreateAclsRequest(
        b.resource, b.name, b.pattern, b.user, "*", b.operation, ALLOW))
    for error_code, message in response.creation_responses:
        if error_code:
            raise KafkaControlError(f"creating ACL {b} failed: {error_code} {message}")


async def describe_acls(admin: AIOKafkaAdminClient) -> set[Binding]:
    """Every ALLOW ACL on topics and groups the broker's authorizer holds now."""
    response: Any = await admin._send_request(DescribeAclsRequest(
        Resource.ANY, None, Pattern.ANY, None, None, Operation.ANY, ANY_PERMISSION))
    if response.error_code:
        raise KafkaControlError(f"describing ACLs failed: {response.error_message}")
    found: set[Binding] = set()
    for resource, name, pattern, acls in response.resources:
        if resource not in (Resource.TOPIC, Resource.GROUP):
            continue
        for principal, _host, operation, permission in acls:
            known = operation in (Operation.READ, Operation.WRITE, Operation.DESCRIBE)
            if known and permission == ALLOW and principal.startswith("User:"):
                found.add(Binding(principal.removeprefix("User:"), Resource(resource),
                                  Pattern(pattern), name, Operation(operation)))
    return found


async def secure_topics(settings: Settings) -> tuple[list[str], int]:
    """As admin: create the declared topics, then the ACLs; (topics created, ACL count)."""
    from jax_exec.topics_admin import ensure_topics

    auth = load_credentials(credentials_file(settings.jax_home, "admin"))
    created = await ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, auth=auth)
    count = await apply_acls(settings.kafka_bootstrap, auth, settings.topic_prefix,
                             settings.app_id)
    return created, count
