"""A small controller queue (client-go's workqueue): keys are reconciled one
at a time each, a key marked again while it runs is run again after, a
failure requeues it with exponential backoff and jitter (5 ms doubling to
30 s), and `reconcile` may ask to be called again after a delay. Queued
keys (running or waiting for a timer) and retries go to Prometheus through
nimbus.metrics.ControllerMetrics, as every controller's do."""

from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable

from nimbus import log, metrics

_log = log.get("nimbus.controller")
BASE, CAP = 0.005, 30.0


class Controller:
    def __init__(self, name: str, reconcile: Callable[[str], Awaitable[float | None]]):
        self.name = name
        self.reconcile = reconcile
        self.running: dict[str, asyncio.Task] = {}
        self.dirty: set[str] = set()
        self.failures: dict[str, int] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.interrupted: set[str] = set()
        self.stopping = False
        self.metrics = metrics.ControllerMetrics(
            name, lambda: len(self.running.keys() | self.timers.keys()))
        self.metrics.start()
        self._stopped = False

    def enqueue(self, key: str) -> None:
        if self._stopped:   # leading again after stop(): the same queue, fresh
            self._stopped = False
            self.metrics.start()
        task = self.running.get(key)
        if task is not None and not task.done():
            self.dirty.add(key)
            return
        task = asyncio.create_task(self._run(key))
        self.running[key] = task
        task.add_done_callback(lambda t: self._finished(key, t))

    def _finished(self, key: str, task: asyncio.Task) -> None:
        if self.running.get(key) is not task:
            return
        del self.running[key]
        if task.cancelled() and key in self.interrupted and not self.stopping:
            # cancel() reached the task before it ever ran (created, not yet
            # started: a delete overtaking a build in one informer batch);
            # the run it asked for must still happen.
            self.interrupted.discard(key)
            self.enqueue(key)

    def enqueue_after(self, key: str, delay: float) -> None:
        old = self.timers.pop(key, None)
        if old is not None:
            old.cancel()
        self.timers[key] = asyncio.get_running_loop().call_later(delay, self._timer_fired, key)

    def _timer_fired(self, key: str) -> None:
        self.timers.pop(key, None)   # only pending timers are kept (and counted as queued)
        self.enqueue(key)

    def cancel(self, key: str) -> None:
        """Stop the key's reconcile now (a delete overtaking a build)."""
        task = self.running.get(key)
        if task is not None and not task.done():
            self.interrupted.add(key)
            task.cancel()

    async def _run(self, key: str) -> None:
        while True:
            self.dirty.discard(key)
            try:
                again = await self.reconcile(key)
                self.failures.pop(key, None)
                if again is not None:
                    self.enqueue_after(key, again)
            except asyncio.CancelledError:
                if key not in self.interrupted:
                    raise
                self.interrupted.discard(key)
                self.dirty.add(key)   # cancelled by cancel(): run again, fresh
                asyncio.current_task().uncancel()
            except Exception as exc:  # noqa: BLE001 - requeued with backoff
                n = self.failures.get(key, 0)
                self.failures[key] = n + 1
                self.metrics.retried()
                delay = min(CAP, BASE * 2 ** n) * (0.5 + random.random() / 2)
                _log.warning("reconcile failed, retrying", controller=self.name, key=key,
                             error=str(exc) or type(exc).__name__, retry_in=round(delay, 3))
                self.enqueue_after(key, delay)
            if key not in self.dirty:
                return

    async def stop(self) -> None:
        self.stopping = True
        self.metrics.stop()
        # A key cancel() interrupted would otherwise run once more here.
        self.interrupted.clear()
        for timer in self.timers.values():
            timer.cancel()
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        self.running.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Reusable: a process that loses leadership and wins it again calls
        # lead() on the same object, which enqueues into this queue again.
        # Timers set while the tasks ended are cancelled too.
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.dirty.clear()
        self.interrupted.clear()
        self.failures.clear()
        self.stopping = False
        self._stopped = True
