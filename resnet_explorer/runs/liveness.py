"""Is the process that writes a run still alive? Pid, host and start time, so a reused pid does not fool it.

A run folder stores who writes it (`process_identity`). A reader that finds status "running"
asks `writer_alive`: on the same host, the pid must exist and have started when the writer did
(psutil's create time, to the second); on another host the pid means nothing there, so the run
counts as alive while its run.json was updated within `REMOTE_STALE_SECONDS`.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import psutil

REMOTE_STALE_SECONDS = 3600.0  # a run written from another host, silent this long, is interrupted
START_TOLERANCE = 1.0  # seconds: create times are rounded differently on some platforms


def process_identity() -> dict[str, Any]:
    """This process's pid, host name and start time (seconds since the epoch)."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "pid_started": psutil.Process(pid).create_time()}


def writer_alive(info: dict[str, Any], now: float | None = None) -> bool:
    """Whether the process that wrote `info` (a run.json) may still be writing it."""
    pid, host, started = info.get("pid"), info.get("host"), info.get("pid_started")
    if host is not None and host != socket.gethostname():
        updated = info.get("updated")
        return isinstance(updated, (int, float)) and (now or time.time()) - updated < REMOTE_STALE_SECONDS
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return False
    if isinstance(started, (int, float)):
        return abs(created - started) <= START_TOLERANCE
    # Runs written before the start time was stored: a live pid that started after the run did
    # is another process.
    created_ts = info.get("created_ts")
    return not (isinstance(created_ts, (int, float)) and created > created_ts + START_TOLERANCE)
