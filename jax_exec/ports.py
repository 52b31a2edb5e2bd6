"""Free TCP ports for the brokers the project starts on this machine (tests, benchmark).

A port handed out by the kernel for `bind(0)` lies in the ephemeral range, the same range
outgoing connections draw their local ports from: a broker started a moment later on such a
port (or on its neighbour) can find it taken by a connection of another process, a node of
the same cluster included. Blocks are therefore chosen below that range."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free(port: int, host: str) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port_block(count: int, host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A base port with base .. base+count-1 all free, below the ephemeral range."""
    high = max(LOWEST + count + 1, _ephemeral_low() - count)
    for _ in range(attempts):
        base = random.randrange(LOWEST, high)
        if all(_free(base + i, host) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports between {LOWEST} and {high}")
