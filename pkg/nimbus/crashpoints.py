"""Crash points for fault tests: with NIMBUS_CRASH_AT=name[,name...] a
process dies the first time it reaches a named point, by os._exit(137):
no clean-up, no finally, no flushed buffers, as kill -9 leaves it. A real
crash at a chosen step, not a mock. Unset (always, outside tests), reach()
is one set lookup."""

from __future__ import annotations

import os
import sys

POINTS = frozenset(p for p in os.environ.get("NIMBUS_CRASH_AT", "").split(",") if p)


def reach(name: str) -> None:
    if name in POINTS:
        sys.stderr.write(f"nimbus: crash point {name} reached: exiting as kill -9 would\n")
        sys.stderr.flush()
        os._exit(137)
