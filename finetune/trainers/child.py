"""Running an upstream training script as a child process and turning its output into progress events."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Callable, Sequence

from ..progress import Progress


def run(args: Sequence[str], cwd: str, progress: Progress, on_line: Callable[[str], None], log_path: str,
        env: dict[str, str] | None = None) -> None:
    """Runs `python ARGS` in cwd with this interpreter; each output line goes to on_line and the log.
    A failure raises RuntimeError with the script's last lines, which say what went wrong."""
    tail: list[str] = []
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(args)}  (in {cwd})\n")
        log.flush()
        child = subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, bufsize=1, env={**os.environ, **(env or {})})
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            line = line.rstrip("\n")
            tail = (tail + [line])[-15:]
            on_line(line)
        code = child.wait()
    if code != 0:
        last = next((t for t in reversed(tail) if t.strip()), "")
        raise RuntimeError(f"{os.path.basename(args[0])} exited with {code}: {last}")


class EpochClock:
    """ETA from the share of steps done so far."""

    def __init__(self, total_steps: int) -> None:
        self.total = max(1, total_steps)
        self.started = time.monotonic()

    def eta(self, done: int) -> float | None:
        if done <= 0:
            return None
        return round((time.monotonic() - self.started) * (self.total - done) / done, 1)


LOSS_LINE = re.compile(r"Epoch (\d+) \| Step (\d+) \| Loss: ([0-9.eE+-]+|nan|inf)")
