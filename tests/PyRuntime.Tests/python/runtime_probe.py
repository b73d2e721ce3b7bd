"""Python half of PythonRuntimeTests: small functions whose behaviour the C# tests observe."""
from __future__ import annotations

import threading
import time
from typing import Iterator

import numpy as np

closed: list[str] = []
_ticks = 0


def numpy_version() -> str:
    return np.__version__


def fail_here() -> None:
    raise ValueError("deliberate failure for the traceback test")  # FAIL_LINE


def echo_float32(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).copy()


def int16_samples() -> np.ndarray:
    return np.arange(480, dtype=np.int16)


def ramp(start: int, count: int, size: int) -> Iterator[np.ndarray]:
    for i in range(count):
        yield np.full(size, start + i, dtype=np.float32)


def endless(token: str) -> Iterator[np.ndarray]:
    try:
        i = 0
        while True:
            yield np.full(4, i, dtype=np.float32)
            i += 1
    finally:
        closed.append(token)


def int16_from(n: int, token: str) -> Iterator[np.ndarray]:
    """float32 chunks, then from chunk n on int16 ones: a conversion fails while the generator is suspended."""
    try:
        i = 0
        while True:
            yield np.full(4, i, dtype=np.float32 if i < n else np.int16)
            i += 1
    finally:
        closed.append(token)


def was_closed(token: str) -> bool:
    return token in closed


def breaks_after(n: int) -> Iterator[np.ndarray]:
    for i in range(n):
        yield np.full(2, i, dtype=np.float32)
    raise RuntimeError(f"stream broke after {n} chunks")


def start_ticker() -> None:
    def tick() -> None:
        global _ticks
        while True:
            _ticks += 1
            time.sleep(0.005)

    threading.Thread(target=tick, daemon=True).start()


def ticks() -> int:
    return _ticks


_thread_numbers: dict[int, int] = {}


def thread_of_each_step(steps: int, seconds: float) -> Iterator[np.ndarray]:
    """One chunk per step, holding the number of the Python thread that ran the step; each step waits a little."""
    for _ in range(steps):
        number = _thread_numbers.setdefault(threading.get_ident(), len(_thread_numbers))
        time.sleep(seconds)
        yield np.full(1, number, dtype=np.float32)
