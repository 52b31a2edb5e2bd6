"""How a Kafka client of this project authenticates: one value, turned into aiokafka keyword
arguments and faust's `broker_credentials`. Pure (no file or network I/O); the entry point
builds it from settings (jax_exec.kafka_security.client_auth) and passes it inward."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import faust
from faust.types.auth import SASLMechanism

Protocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]
PROTOCOLS: tuple[Protocol, ...] = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class KafkaAuthError(ValueError):
    """Settings that cannot make a working client (a SASL protocol without a user, ...)."""


@dataclass(frozen=True)
class KafkaAuth:
    """PLAINTEXT (the default: no authentication) or SASL with a user and password."""

    protocol: Protocol = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr, so never logged
    ssl_cafile: str | None = None  # SASL_SSL: the CA bundle; None = the system's

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaAuthError(f"security protocol {self.protocol!r}: choose from {PROTOCOLS}")
        if not self.sasl:
            return
        if self.mechanism not in MECHANISMS:
            raise KafkaAuthError(f"SASL mechanism {self.mechanism!r}: choose from {MECHANISMS}")
        if not self.username or self.password is None:
            raise KafkaAuthError(f"{self.protocol} needs a username and a password "
                                 "(KAFKA_USERNAME/KAFKA_PASSWORD or KAFKA_CREDENTIALS_FILE)")

    @property
    def sasl(self) -> bool:
        return self.protocol != "PLAINTEXT"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> KafkaAuth:
        """From a credentials file's content: username, password and, optionally,
        security_protocol, sasl_mechanism, ssl_cafile (as jax-exec generates them)."""
        unknown = set(values) - {"username", "password", "security_protocol", "sasl_mechanism",
                                 "ssl_cafile", "principal"}
        if unknown:
            raise KafkaAuthError(f"unknown credentials field(s): {sorted(unknown)}")
        return cls(protocol=values.get("security_protocol", "SASL_PLAINTEXT"),
                   mechanism=values.get("sasl_mechanism", "SCRAM-SHA-512"),
                   username=values.get("username"), password=values.get("password"),
                   ssl_cafile=values.get("ssl_cafile"))

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.protocol != "SASL_SSL":
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        if not self.sasl:
            return {}
        kwargs: dict[str, Any] = {
            "security_protocol": self.protocol, "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username, "sasl_plain_password": self.password,
        }
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        return kwargs

    def faust_credentials(self) -> faust.SASLCredentials | None:
        """faust.App(broker_credentials=...): faust hands the same values to aiokafka."""
        if not self.sasl:
            return None
        # faust infers SASL_SSL from the presence of an SSL context
        return faust.SASLCredentials(username=self.username, password=self.password,
                                     mechanism=SASLMechanism(self.mechanism),
                                     ssl_context=self.ssl_context())


NO_AUTH = KafkaAuth()
