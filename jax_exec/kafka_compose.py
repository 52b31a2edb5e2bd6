"""The compose stack's Kafka security, from the same table as the local secure broker.

`python -m jax_exec.kafka_compose credentials`: one password per principal under
JAX_HOME/kafka/credentials (what docker-compose.yml mounts as the secrets kafka-<principal>;
existing files are kept). `python -m jax_exec.kafka_compose setup` (the kafka-setup service):
as admin (KAFKA_CREDENTIALS_FILE), create the declared topics and every ACL of
jax_exec.kafka_acls, then exit 0.

`SERVICE_PRINCIPALS` says which principal each compose service authenticates as; a test checks
it against the compose file and the ACL table.
"""

from __future__ import annotations

import asyncio
import sys

from jax_exec.kafka_acls import PRINCIPALS, stage_principal
from jax_exec.kafka_security import apply_acls, client_auth, credentials_dir, ensure_credentials
from jax_exec.settings import Settings

SETUP_SECONDS = 180.0


def principal_of(command: list[str]) -> str | None:
    """The principal a compose service's command runs as (None: no Kafka client)."""
    if command[:2] == ["jax-exec", "worker"]:
        stages = {command[i + 1] for i, arg in enumerate(command[:-1]) if arg == "--stage"}
        return stage_principal(stages)
    if "kafka_compose" in " ".join(command):
        return "admin"
    return None


async def setup(settings: Settings) -> tuple[list[str], int]:
    from jax_exec.topics_admin import ensure_topics

    auth = client_auth(settings, "admin")
    async with asyncio.timeout(SETUP_SECONDS):
        created = await ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, auth=auth)
        count = await apply_acls(settings.kafka_bootstrap, auth, settings.topic_prefix,
                                 settings.app_id)
    return created, count


def main(argv: list[str]) -> int:
    settings = Settings()
    if argv == ["credentials"]:
        ensure_credentials(settings.jax_home)
        print(f"{len(PRINCIPALS)} principals' credentials in {credentials_dir(settings.jax_home)}")
        return 0
    if argv == ["setup"]:
        created, count = asyncio.run(setup(settings))
        print(f"topics created: {', '.join(created) or 'none (all present)'}; {count} ACLs")
        return 0
    print("usage: python -m jax_exec.kafka_compose credentials|setup", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
