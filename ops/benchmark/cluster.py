"""ops/bench --cluster: a front Timbre node in front of two classic Timbre workers, all on this machine.

Prints figures, never fails on them (README, "Scaling out"):
- concurrency 1: first audio through the front against the same worker driven directly, interleaved;
- concurrency 16: requests per second through the front against the two workers driven directly
  (8 streams on each), interleaved;
- a worker killed with SIGKILL during a run through the front: failed requests against those that were
  in flight on it.

Every request streams 16-bit PCM from POST /v1/speech; first audio is the first body byte.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DLL = ROOT / "ControlPlane" / "bin" / "Release" / "net10.0" / "Timbre.ControlPlane.dll"
TEXT = ("I have finished the refactoring of the voice library, and every test passes again. The upload path now "
        "stores a canonical copy of each sample beside the original. Next I will look at the streaming endpoint.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, name: str, work: Path, key: str, *extra: str) -> None:
        self.name, self.key, self.port = name, key, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["dotnet", str(DLL), "--urls", self.url, "--Timbre:DataDirectory", str(work / name),
                     "--Timbre:Auth:ApiKeys:0", key, "--Timbre:Limits:RequestsPerMinute", "0",
                     "--Logging:LogLevel:Default", "Warning", *extra]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        self.process = subprocess.Popen(self.args, cwd=DLL.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(480):
            try:
                if self.request("GET", "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"bench: {self.name} never became ready")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            c.request(method, path, body=body, headers={"Authorization": f"Bearer {self.key}", **(headers or {})})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def enrol(self, name: str, wav: Path) -> None:
        boundary = secrets.token_hex(8)
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"ref.wav\"\r\n"
                f"Content-Type: audio/wav\r\n\r\n").encode() + wav.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        status, text = self.request("POST", "/v1/voices", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 201:
            raise SystemExit(f"bench: enrolling on {self.name} answered {status}: {text[:300]!r}")

    def speak(self, engine: str | None = None) -> tuple[float, float, bool]:
        """(first audio s, total s, ok): a streamed PCM request read to its end."""
        body = {"text": TEXT, "voice": "ada", "format": "pcm", "stream": True}
        if engine:
            body["engine"] = engine
        start = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            c.request("POST", "/v1/speech", body=json.dumps(body).encode(),
                      headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                r.read()
                return 0.0, time.perf_counter() - start, False
            first = r.read1(65536)
            first_at = time.perf_counter() - start
            total = len(first)
            while chunk := r.read1(65536):
                total += len(chunk)
            return first_at, time.perf_counter() - start, total > 0
        except (OSError, http.client.HTTPException):
            return 0.0, time.perf_counter() - start, False
        finally:
            c.close()


def p50(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    args = ap.parse_args()

    key, node_key = secrets.token_hex(24), secrets.token_hex(24)
    work = Path(tempfile.mkdtemp(prefix="timbre-cluster-bench-"))
    wav = work / "reference.wav"
    subprocess.run(["espeak-ng", "-v", "en-us+f3", "-w", str(wav), "The small pup gnawed a hole in the sock. "
                    "The fish twisted and turned on the bent hook. Press the pants and sew a button on the vest."], check=True)
    workers = [Node(f"worker{i}", work, key, "--Timbre:Cluster:NodeKey", node_key) for i in range(2)]
    front = Node("front", work, key,
                 "--Timbre:Engine:Remote:workers:Kind", "timbre", "--Timbre:Engine:Remote:workers:Model", "classic",
                 "--Timbre:Engine:Remote:workers:ApiKey", node_key, "--Timbre:Engine:Remote:workers:Concurrency", "8",
                 "--Timbre:Engine:Remote:workers:BreakSeconds", "2",
                 *[a for i, w in enumerate(workers) for a in (f"--Timbre:Engine:Remote:workers:Endpoints:{i}", w.url)])
    nodes = [*workers, front]
    try:
        print(f"bench --cluster: a front and two classic workers on this machine ({os.cpu_count()} cores); "
              f"{len(TEXT)}-character text, streamed PCM", flush=True)
        for n in nodes:
            n.start()
            n.enrol("Ada", wav)
        # Warm-up: the JIT, the engines, the workers' copies of the voice's samples.
        with cf.ThreadPoolExecutor(16) as pool:
            for _ in range(3):
                list(pool.map(lambda _: front.speak("workers"), range(16)))
                list(pool.map(lambda i: workers[i % 2].speak(), range(16)))

        # Concurrency 1, interleaved: through the front (to whichever worker) and worker 0 directly.
        via, direct = [], []
        for i in range(args.requests):
            for path in ((via, lambda: front.speak("workers")), (direct, lambda: workers[i % 2].speak()))[:: 1 if i % 2 else -1]:
                first, _, ok = path[1]()
                if ok:
                    path[0].append(first)
        gap = p50(via) - p50(direct)
        print(f"c=1 first audio p50: through the front {p50(via):.1f} ms, a worker directly {p50(direct):.1f} ms: "
              f"{gap:+.1f} ms; target ≤ +5 ms → {'met' if gap <= 5 else 'NOT met'}", flush=True)

        # Concurrency 16, interleaved rounds: requests per second.
        def round_of(call, n: int = 16) -> tuple[float, int]:
            start = time.perf_counter()
            with cf.ThreadPoolExecutor(n) as pool:
                results = list(pool.map(call, range(n)))
            return time.perf_counter() - start, sum(1 for r in results if not r[2])

        rounds = max(2, args.requests // 16)
        via_s = direct_s = 0.0
        failed = 0
        for r in range(rounds):
            order = [("via", lambda _: front.speak("workers")), ("direct", lambda i: workers[i % 2].speak())]
            for name, call in order[:: 1 if r % 2 else -1]:
                seconds, bad = round_of(call)
                failed += bad
                if name == "via":
                    via_s += seconds
                else:
                    direct_s += seconds
        ratio = direct_s / via_s
        print(f"c=16 throughput: through the front {16 * rounds / via_s:.2f} requests/s, the two workers directly "
              f"{16 * rounds / direct_s:.2f} requests/s: {ratio:.0%}; target ≥ 90 % → {'met' if ratio >= 0.9 else 'NOT met'}"
              f" ({failed} failed)", flush=True)

        # A worker killed with SIGKILL while 8 streams at a time run through the front.
        results: list[tuple[float, float, bool]] = []
        in_flight_on_killed = -1
        lock = threading.Lock()

        def one(_: int) -> None:
            r = front.speak("workers")
            with lock:
                results.append(r)

        with cf.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, i) for i in range(48)]
            time.sleep(2.0)
            _, text = front.request("GET", "/v1/engines")
            engines = json.loads(text)
            endpoint = next(e for e in engines if e["name"] == "workers")["endpoints"][1]
            in_flight_on_killed = endpoint["inFlight"]
            workers[1].kill()
            for f in futures:
                f.result()
        failures = sum(1 for r in results if not r[2])
        print(f"SIGKILL of a worker during 48 requests through the front (8 at a time): {failures} failed, "
              f"{in_flight_on_killed} were in flight on it; target: no failures beyond those → "
              f"{'met' if failures <= in_flight_on_killed else 'NOT met'}", flush=True)
    finally:
        for n in nodes:
            n.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
