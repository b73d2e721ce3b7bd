"""Records the fakes' calls: in memory, and as JSON lines in $TIMBRE_FAKE_LOG when set."""
import json
import os
import threading

CALLS: list[dict] = []
_lock = threading.Lock()


def record(call: str, **fields) -> None:
    entry = {"call": call, **fields}
    with _lock:
        CALLS.append(entry)
        path = os.environ.get("TIMBRE_FAKE_LOG")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, default=str) + "\n")


def speechlike(seconds: float, f0: float, rng, sample_rate: int = 24000, edge_s: float = 0.1):
    """A buzz at f0 in syllable-sized bursts, with silence at both ends, as float32."""
    import numpy as np

    n = max(1, int(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    audio = 0.2 * voice * syllables + 0.01 * rng.standard_normal(n)
    edge = min(int(edge_s * sample_rate), n // 4)
    audio[:edge] = 0.0
    audio[n - edge:] = 0.0
    return audio.astype(np.float32)
