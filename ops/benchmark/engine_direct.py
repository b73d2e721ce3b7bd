"""The floor: the classic engine called directly in Python, no server in between.

ops/bench's client starts this twice (the floor, and a second process as an A/A control, each for the
whole run) and asks for rounds on stdin, interleaved with its rounds against
Timbre, so that both are measured in the same minutes (this machine's speed drifts by tens of per cent
over a run). A line "N" runs N requests at once, each on its own thread as an in-process Python server
would run them, and answers one JSON line: per request [seconds to first chunk, seconds to the end,
underruns], underruns counted as the bench client counts them for Timbre's paths.

Every stream carries the provenance mark, as Timbre's do: the mark is part of what the engine's output
is, so the floor pays for it too.
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
from timbre.provenance import Key, Marker  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voice-dir", required=True)
    ap.add_argument("--sample", required=True)
    ap.add_argument("--text", required=True)
    args = ap.parse_args()

    engine = create("classic", {})
    engine.load()
    samples = [VoiceSample(args.sample, None)]
    engine.prepare_voice(args.voice_dir, samples)
    request = SpeechRequest(text=args.text, language=None, speed=1.0, instructions=None)
    pattern = Key(bytes(32)).pattern()

    def marked(tag: int):
        marker = Marker(pattern, tag, engine.sample_rate)
        for chunk in engine.stream(args.voice_dir, samples, request):
            out = marker.push(chunk)
            if len(out):
                yield out
        tail = marker.finish()
        if len(tail):
            yield tail

    def one(go: threading.Barrier, out: list[list[float]], lock: threading.Lock) -> None:
        go.wait()
        start = time.perf_counter()
        first = None
        buffered_until = 0.0
        underruns = 0
        for chunk in marked(threading.get_ident() & 0xFFFFFFFF):
            now = time.perf_counter() - start
            seconds = len(chunk) / engine.sample_rate
            if first is None:
                first, buffered_until = now, now + seconds
                continue
            if now > buffered_until:
                underruns += 1
                buffered_until = now
            buffered_until += seconds
        with lock:
            out.append([first or 0.0, time.perf_counter() - start, underruns])

    def round_of(n: int) -> list[list[float]]:
        out: list[list[float]] = []
        lock = threading.Lock()
        go = threading.Barrier(n)
        threads = [threading.Thread(target=one, args=(go, out, lock)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(round_of(int(line))), flush=True)


if __name__ == "__main__":
    main()
