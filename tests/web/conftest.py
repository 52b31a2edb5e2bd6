"""The stack the browser tests drive: the real Kafka broker, `jax-exec sim` (IB wire), and the
worker with every stage, its embedded API (it owns embedded ClickHouse) and the page's live
feed; users with tokens and approval keys under the worker's JAX_HOME; Debian's chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.users import Role, UserStore
from jax_exec.keys import ensure_approver_key, keyring_path
from tests.integration.harness import (
    ROOT,
    SimulatorProcess,
    WorkerProcess,
    free_port,
    publish,
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]  # tests run as root
ARTIFACTS = Path(os.environ.get("WEB_ARTIFACTS", Path(tempfile.gettempdir()) / "jax-web-artifacts"))


class ApiWorker(WorkerProcess):
    """WorkerProcess through tests.web.live_worker: `worker --api` plus the live feed."""

    def start(self, timeout: float = 90.0) -> ApiWorker:
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "tests.web.live_worker", "worker", "--web-port",
               str(self.web_port), "--api", *self.args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            if any(line.strip() == "ready" for line in self.log.read_text(errors="replace")
                   .splitlines()):
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.tail()}")


@dataclass
class Stack:
    sim: SimulatorProcess
    worker: ApiWorker
    prefix: str
    url: str
    tokens: dict[str, str]

    def get(self, path: str, role: str = "viewer", **params: Any) -> Any:
        resp = httpx.get(f"{self.url}{path}", params=params, timeout=30,
                         headers={"Authorization": f"Bearer {self.tokens[role]}"})
        resp.raise_for_status()
        return resp.json()

    def post(self, path: str, role: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {self.tokens[role]}"})

    def publish(self, topic: str, value: dict[str, Any], key: bytes) -> None:
        """From a thread of its own: sync Playwright keeps an event loop in this one."""
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, publish(f"{self.prefix}{topic}", value, key=key)).result(60)

    def wait(self, what: str, check: Callable[[], Any], within: float = 60.0) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.3)
        raise AssertionError(f"{what}: not within {within}s\n{self.worker.tail()}")


def _users(home: Path) -> dict[str, str]:
    store = UserStore.under(home)
    tokens = {}
    for name, role in (("vera", Role.VIEWER), ("alice", Role.APPROVER), ("root", Role.ADMIN)):
        tokens[role.value] = store.add(name, role)
        if role is not Role.VIEWER:
            ensure_approver_key(home, name)
    return tokens


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("web")
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    home = tmp / "worker"
    tokens = _users(home)
    port = free_port()
    sim = SimulatorProcess(tmp / "sim")
    worker: ApiWorker | None = None
    try:
        sim.wait_ready()
        worker = ApiWorker(home, prefix, env={
            "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port),
            "IB_CLIENT_ID": "11", "API_PORT": str(port), "API_HOST": "127.0.0.1",
            "APPROVAL_KEYRING": str(keyring_path(home)), "LOG_LEVEL": "warning"})
        worker.start()
        yield Stack(sim, worker, prefix, f"http://127.0.0.1:{port}", tokens)
    finally:
        if worker is not None:
            worker.stop()
        sim.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: `apt-get install -y chromium` (make "
                    "system-deps does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def keep_screenshot(page: Any, tmp_path: Path, name: str, docs: Path | None = None) -> Path:
    """A full-page PNG under the test's tmp dir, copied to ARTIFACTS (and to docs/ when
    UPDATE_DOCS_SCREENSHOT=1); returns the tmp path."""
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    if docs is not None and os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copy(shot, docs)
    print(f"screenshot: {shot} (copy in {ARTIFACTS})")
    return shot
