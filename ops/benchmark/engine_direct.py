"""The floor: the classic engine called directly in Python, no server in between.

Prints one JSON object: per concurrency, each request's time to first chunk and total time (seconds).
Concurrent requests run on threads, as an in-process Python server would run them.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "PyRuntime" / "python"))

from timbre.engines import SpeechRequest, VoiceSample, create  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voice-dir", required=True)
    ap.add_argument("--sample", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--requests", type=int, default=20)
    args = ap.parse_args()

    engine = create("classic", {})
    engine.load()
    samples = [VoiceSample(args.sample, None)]
    engine.prepare_voice(args.voice_dir, samples)
    request = SpeechRequest(text=args.text, language=None, speed=1.0, instructions=None)

    def one() -> tuple[float, float]:
        start = time.perf_counter()
        first = None
        for _ in engine.stream(args.voice_dir, samples, request):
            if first is None:
                first = time.perf_counter() - start
        return first or 0.0, time.perf_counter() - start

    for _ in range(3):
        one()
    results: dict[str, list[list[float]]] = {}
    for c in [int(x) for x in args.concurrency.split(",")]:
        total = max(args.requests, c)
        per_thread = [total // c + (1 if i < total % c else 0) for i in range(c)]
        out: list[list[float]] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            for _ in range(n):
                r = one()
                with lock:
                    out.append(list(r))

        threads = [threading.Thread(target=worker, args=(n,)) for n in per_thread]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results[str(c)] = out
    print(json.dumps(results))


if __name__ == "__main__":
    main()
