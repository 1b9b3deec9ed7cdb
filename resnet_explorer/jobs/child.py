"""The one protocol between the app and its child processes (training, analyses): how a child is started,
reads its work, hears Stop and reports, written once.

Why children at all: a training loop or an analysis and the UI's Python work (reruns, figures,
serialisation) in one process contend for the GIL (see `worker`). A fresh interpreter rather than
multiprocessing: spawn re-imports the parent's __main__, which inside Streamlit is the page script.

The protocol:
- the parent starts ``python -m <module>`` (`start`) and writes one JSON header line on its stdin;
- a later "stop" line on stdin, or stdin closing (the parent is gone), sets the child's stop event;
- the child reports as JSON lines on its stdout (`Channel`); anything else it prints goes to stderr,
  so a stray print cannot corrupt the channel. Once nobody reads (a broken pipe: the server died),
  messages are dropped and the stop event is set, so the work ends "stopped" at its next check, and
  never "failed: BrokenPipeError";
- the last message is always ("finished",); a header that cannot be read, or an interrupt, is
  reported as ("failed", -1, message) first.
Each child names its own messages (`worker`: training events; `explain_worker`: analysis tasks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..data.base import one_line

__all__ = ["Channel", "serve", "start"]


class Channel:
    """`put(message)` as one JSON line on a stream the parent reads; once the parent is gone (a broken
    pipe), messages are dropped and `gone` is set."""

    def __init__(self, stream, gone: threading.Event) -> None:
        self.stream, self.lock, self.gone = stream, threading.Lock(), gone

    def put(self, message: tuple) -> None:
        with self.lock:
            if self.stream is None:
                return
            try:
                self.stream.write(json.dumps(message) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # nobody reads any more
                self.stream = None
                self.gone.set()


def serve(work: Callable[[Mapping[str, Any], Channel, threading.Event], None]) -> None:
    """A child's main: the channel on stdout, the header from stdin, a thread that turns "stop" (or stdin
    closing) into the stop event, then `work(header, channel, stop)`; whatever escapes it is reported."""
    stop = threading.Event()
    channel = Channel(os.fdopen(os.dup(sys.stdout.fileno()), "w"), stop)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints cannot corrupt the channel
    try:
        header = json.loads(sys.stdin.readline())

        def watch() -> None:
            for line in sys.stdin:
                if line.strip() == "stop":
                    stop.set()
            stop.set()

        threading.Thread(target=watch, daemon=True).start()
        work(header, channel, stop)
    except BaseException as err:  # a bad header, KeyboardInterrupt: the parent must still hear the end
        channel.put(("failed", -1, one_line(err) or type(err).__name__))
        channel.put(("finished",))


def start(module: str, header: Mapping[str, Any]) -> subprocess.Popen:
    """Start ``python -m <module>`` with this package importable and send it `header`; read its stdout
    lines (JSON messages), write "stop\\n" to its stdin to stop it."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=env)
    process.stdin.write(json.dumps(dict(header)) + "\n")
    process.stdin.flush()
    return process
