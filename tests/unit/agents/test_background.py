"""agents.background: a stage's background task restarts after a failure and stops cleanly."""

from __future__ import annotations

import asyncio

from agents.background import Restarting, cancel_and_wait


async def test_a_failing_body_is_run_again_after_its_delay_and_stop_ends_it() -> None:
    runs: list[int] = []
    forever = asyncio.Event()

    async def body() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise ConnectionError("kafka away")
        await forever.wait()

    task = Restarting("test.bg", body, delays=(0.0, 0.01))
    task.start()
    for _ in range(200):
        if len(runs) == 3:
            break
        await asyncio.sleep(0.005)
    assert runs == [0, 1, 2]
    assert task.failures == 2
    await task.stop()
    assert task.task is None


async def test_cancel_and_wait_takes_none_and_ended_tasks() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    hanging = asyncio.create_task(asyncio.Event().wait())
    await cancel_and_wait(None, done, hanging)
    assert hanging.cancelled()
