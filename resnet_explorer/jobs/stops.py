"""How a stop is worded: one phrase for each way a stop lands, for the training and analysis workers,
their jobs in the app and the pages' status lines.

A job stopped while it waited in line, or a run or task that the stop reached before it began, made
nothing; a run stopped while training says so in its own message ("stopped on request after step 40",
`training.trainer`). `ended` joins a status and its message so the status is never said twice.
"""

from __future__ import annotations

STOPPED_IN_LINE = "stopped while queued, before it started"  # Stop on a job waiting for its device
STOPPED_BEFORE_START = "stopped before it started"  # the stop came before this run or task began
NEVER_STARTED = (STOPPED_IN_LINE, STOPPED_BEFORE_START)


def ended(status: str, message: str = "") -> str:
    """A status and its message as one phrase: "stopped before it started", "failed: disk full".

    The message alone when it already says the status ("stopped on request after step 40", "loss landscape
    stopped on request"), "status: message" otherwise, the status alone without a message.
    """
    message = (message or "").strip()
    if not message:
        return status
    if status.lower() in message.lower():
        return message
    return f"{status}: {message}"
