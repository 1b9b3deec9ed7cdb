"""What the CLI prints: names from outside made terminal-safe, tables, and the progress lines of training
and of analyses on stderr."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..jobs.stops import ended

# Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts ANSI sequences, CR
# and LF break the line), the line and paragraph separators, and the bidirectional overrides and
# isolates that can make a name read in another order than its bytes.
_TERMINAL_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: object) -> str:
    """`text` as one printable line: each character a terminal would act on written as \\xNN or \\uNNNN.

    For everything printed that came from outside the program: file and folder names, a run.json's
    fields, an error's message that quotes them.
    """
    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _TERMINAL_UNSAFE.sub(escape, str(text))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(empty)"
    columns = list(columns or rows[0])

    def fmt(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else terminal_safe(v)

    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) if v[:1].isdigit() else v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


class Progress:
    """A one-line progress bar on stderr (redrawn on a terminal, every 10% otherwise)."""

    def __init__(self, label: str, stream=None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total, self.eval_acc, self.last_decile = 0, None, -1

    def __call__(self, event) -> None:
        if event.kind == "start":
            self.total = event.data.total_steps
            print(f"{self.label}: {self.total} steps on {event.data.device}", file=self.stream)
        elif event.kind == "eval":
            self.eval_acc = event.data["accuracy"]
        elif event.kind == "phase" and event.data.phase == "evaluating" and self.tty:
            d = event.data
            print(f"\r[evaluating {d.batch}/{d.batches}] step {event.step}/{self.total}" + " " * 20, end="",
                  file=self.stream, flush=True)
        elif event.kind == "step":
            d = event.data
            frac = event.step / max(1, self.total)
            bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
            line = (f"[{bar}] {event.step}/{self.total} loss {d['loss']:.3f} acc {d['accuracy']:.3f}"
                    + (f" | test acc {self.eval_acc:.3f}" if self.eval_acc is not None else "")
                    + f" | {d['seconds']:.0f} s")
            if self.tty:
                print("\r" + line, end="", file=self.stream, flush=True)
            elif int(frac * 10) > self.last_decile:
                self.last_decile = int(frac * 10)
                print(line, file=self.stream, flush=True)
        elif event.kind == "done":
            if self.tty:
                print(file=self.stream)
            acc = f", test accuracy {self.eval_acc:.3f}" if self.eval_acc is not None else ""
            print(f"{ended(event.data.status, event.data.message)}{acc} ({event.data.seconds:.1f} s)",
                  file=self.stream)


class Counter:
    """Progress of an analysis on stderr: (done, total) calls, redrawn on a terminal, every 10% otherwise."""

    def __init__(self, label: str, stream=None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_decile, self.started = -1, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        frac = done / max(1, total)
        bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
        line = f"{self.label}: [{bar}] {done:,}/{total:,} | {time.perf_counter() - self.started:.0f} s"
        if self.tty:
            print("\r" + line, end="\n" if done >= total else "", file=self.stream, flush=True)
        elif int(frac * 10) > self.last_decile:
            self.last_decile = int(frac * 10)
            print(line, file=self.stream, flush=True)
