"""Delete the test topics (t<10 hex digits>-...) on the local broker: `make test` runs this
when it started the broker itself, before pytest (what killed runs left) and after it.

Every integration test makes its topics under a prefix of its own, and nothing deleted them:
a long-lived checkout's broker grew to 13,571 partitions and ran out of its 512 MiB heap
mid-run. Usage: python tests/prune_topics.py [BOOTSTRAP] (default: the settings' broker)"""

from __future__ import annotations

import asyncio
import re
import sys

from aiokafka.admin import AIOKafkaAdminClient

from jax_exec.settings import Settings

TEST_TOPIC = re.compile(r"^t[0-9a-f]{10}-")
CHUNK = 200  # topics per delete request
SECONDS = 120.0  # the whole prune; what is left waits for the next run


async def prune(bootstrap: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await asyncio.wait_for(admin.start(), 30)
    try:
        names = sorted(t for t in await admin.list_topics() if TEST_TOPIC.match(t))
        refused = 0
        for start in range(0, len(names), CHUNK):
            response = await admin.delete_topics(names[start:start + CHUNK], timeout_ms=30_000)
            refused += sum(1 for _, code in response.topic_error_codes if code)
        if refused:
            print(f"prune_topics: {refused} topics not deleted", file=sys.stderr)
        return len(names) - refused
    finally:
        await asyncio.wait_for(admin.close(), 10)


def main() -> int:
    try:
        bootstrap = sys.argv[1] if len(sys.argv) > 1 else Settings().kafka_bootstrap
        deleted = asyncio.run(asyncio.wait_for(prune(bootstrap), SECONDS))
    except Exception as exc:  # never fails a test run: the next run tries again
        print(f"prune_topics: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 0
    if deleted:
        print(f"prune_topics: deleted {deleted} test topics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
