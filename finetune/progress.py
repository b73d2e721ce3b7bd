"""JSON-lines progress on stdout: one object a line, read by ControlPlane's job runner and by people.

Every event carries the stage; training adds epoch, step, loss, eval_loss and an ETA. Warnings and
the final result are events too, so a reader needs no other channel. Nothing else may print to
stdout in a recipe (numpy and sklearn warnings go to stderr)."""
from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


class Progress:
    def __init__(self, stage: str, out: TextIO | None = None) -> None:
        self.stage = stage
        self._out = out or sys.stdout
        self._started = time.monotonic()

    def emit(self, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "progress", "stage": self.stage}
        event.update({k: v for k, v in fields.items() if v is not None})
        fraction = fields.get("fraction")
        if fraction and 0 < fraction < 1 and "eta_s" not in fields:
            elapsed = time.monotonic() - self._started
            event["eta_s"] = round(elapsed * (1 - fraction) / fraction, 1)
        return self._write(event)

    def warn(self, message: str) -> dict[str, Any]:
        return self._write({"type": "warning", "stage": self.stage, "message": message})

    def error(self, message: str) -> dict[str, Any]:
        return self._write({"type": "error", "stage": self.stage, "message": message})

    def result(self, **fields: Any) -> dict[str, Any]:
        return self._write({"type": "result", "stage": self.stage, **fields})

    def _write(self, event: dict[str, Any]) -> dict[str, Any]:
        event["time"] = round(time.time(), 3)
        self._out.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._out.flush()
        return event
