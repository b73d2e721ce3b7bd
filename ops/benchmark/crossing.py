"""Chunks for ops/bench's crossing figure: 4800 float32 samples each, a 200 ms chunk at 24 kHz."""
from __future__ import annotations

from typing import Iterator

import numpy as np


def chunks(count: int, size: int) -> Iterator[np.ndarray]:
    for i in range(count):
        yield np.full(size, i, dtype=np.float32)
