"""Probes a running Timbre as a careless or hostile client would, and prints what it saw.

Not a test: it measures and reports (the pass/fail checks live in tests/ControlPlane.Tests). Every
request goes to loopback. Run through ops/probe, which starts the server this expects.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import http.client
import json
import os
import re
import signal
import socket
import time
import unicodedata
import urllib.parse

LONG = " ".join(f"This is sentence number {i} of a long text that keeps the engine busy for a while." for i in range(1, 41))


class Timbre:
    def __init__(self, url: str, key: str) -> None:
        u = urllib.parse.urlparse(url)
        self.host, self.port, self.key = u.hostname, u.port, key

    def conn(self, source: str | None = None, timeout: float = 120) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout, source_address=(source, 0) if source else None)

    def request(self, method: str, path: str, body=None, key: str | None = "", source: str | None = None, headers=None):
        c = self.conn(source)
        h = dict(headers or {})
        key = self.key if key == "" else key
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        data = None
        if body is not None and not isinstance(body, bytes):
            data, h["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif body is not None:
            data = body
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, dict(r.getheaders()), payload

    def metric(self, name: str, labels: str) -> float:
        _, _, text = self.request("GET", "/metrics")
        m = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text.decode(), re.M)
        return float(m.group(1)) if m else 0.0

    def wait(self, condition, timeout: float) -> float | None:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if condition():
                return time.perf_counter() - start
            time.sleep(0.01)
        return None


def stream_body(t: Timbre, text: str, read_all: bool = True) -> tuple[int, int]:
    c = t.conn()
    c.request("POST", "/v1/speech", body=json.dumps({"text": text, "voice": "ada", "stream": True, "format": "pcm"}),
              headers={"Authorization": f"Bearer {t.key}", "Content-Type": "application/json"})
    r = c.getresponse()
    n = len(r.read()) if read_all else len(r.read(4800))
    c.close()
    return r.status, n


def auth(t: Timbre) -> list[str]:
    _, _, doc = t.request("GET", "/openapi/v1.json")
    routes = [(m.upper(), re.sub(r"{[^}]+}", "x", p)) for p, ops in json.loads(doc)["paths"].items() for m in ops]
    routes += [("GET", "/metrics"), ("POST", "/hubs/speech/negotiate")]
    open_routes = {"/health", "/ready"}
    guarded = [r for r in routes if r[1] not in open_routes]
    statuses = [t.request(m, p, key=None)[0] for m, p in guarded]
    refused = sum(s == 401 for s in statuses)
    # Guesses come from 127.0.0.2, so the address limit they trigger leaves the rest of the probe alone.
    guesses = [t.request("GET", "/v1/voices", key=f"guess-{i:032d}", source="127.0.0.2")[0] for i in range(30)]
    right_after = t.request("GET", "/v1/voices", source="127.0.0.2")[0]
    return [
        f"routes needing a key: {len(guarded)}; answered 401 without one: {refused}/{len(guarded)}",
        f"30 wrong keys from one address: {guesses.count(401)} × 401, then {guesses.count(429)} × 429; the right key from that address next: {right_after}",
    ]


def burst(t: Timbre) -> list[str]:
    text = "Hello there. This is a short reply from the editor."

    def one(_):
        start = time.perf_counter()
        c = t.conn()
        c.request("POST", "/v1/speech", body=json.dumps({"text": text, "voice": "ada", "stream": True, "format": "pcm"}),
                  headers={"Authorization": f"Bearer {t.key}", "Content-Type": "application/json"})
        r = c.getresponse()
        first = time.perf_counter() - start
        r.read()
        c.close()
        return r.status, first, r.getheader("Retry-After"), time.perf_counter()

    def startable() -> bool:
        return (t.metric("timbre_queue_depth", 'engine="classic"') == 0
                and t.metric("timbre_streams_in_flight", 'engine="classic"') < 16)

    with cf.ThreadPoolExecutor(100) as pool:
        futures = [pool.submit(one, i) for i in range(100)]
        # A retry starts at once when nobody waits and a slot is free: time that from the last 429.
        while sum(f.done() and f.result()[0] == 429 for f in futures) < 20 and not all(f.done() for f in futures):
            time.sleep(0.005)
        refused_at = time.perf_counter()
        cleared = t.wait(startable, 120) or 0.0
        results = [f.result() for f in futures]
    ok = [r for r in results if r[0] == 200]
    busy = [r for r in results if r[0] == 429]
    retry = sorted(int(r[2]) for r in busy if r[2])
    lines = [f"100 simultaneous streams against 16 slots + 64 queued: {len(ok)} × 200, {len(busy)} × 429, other {len(results) - len(ok) - len(busy)}"]
    if busy:
        lines.append(f"429 answered in {1000 * min(r[1] for r in busy):.0f}–{1000 * max(r[1] for r in busy):.0f} ms, every one with Retry-After: {len(retry) == len(busy)}")
        lines.append(f"Retry-After said {retry[0]}–{retry[-1]} s; a retry could start at once {cleared:.1f} s after the 429s (queue empty, a slot free)")
    return lines


def leaving(t: Timbre) -> list[str]:
    times = []
    for _ in range(5):
        c = t.conn()
        c.request("POST", "/v1/speech", body=json.dumps({"text": LONG, "voice": "ada", "stream": True, "format": "pcm"}),
                  headers={"Authorization": f"Bearer {t.key}", "Content-Type": "application/json"})
        r = c.getresponse()
        r.read(4800)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        took = t.wait(lambda: t.metric("timbre_streams_in_flight", 'engine="classic"') == 0, 30)
        times.append(30 if took is None else took)
    return [f"a client leaving mid-stream frees its slot in {1000 * min(times):.0f}–{1000 * max(times):.0f} ms (5 tries)"]


def stalled(t: Timbre, stall_seconds: float) -> list[str]:
    before = t.metric("timbre_rejections_total", 'reason="slow_client"')
    body = json.dumps({"text": LONG, "voice": "ada", "stream": True, "format": "pcm"}).encode()
    socks = []
    start = time.perf_counter()
    for _ in range(16):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((t.host, t.port))
        s.sendall(f"POST /v1/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {t.key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        socks.append(s)
    t.wait(lambda: t.metric("timbre_streams_in_flight", 'engine="classic"') >= 16, 30)
    asked = time.perf_counter()
    status, _, wav = t.request("POST", "/v1/speech", {"text": "Hello.", "voice": "ada"})
    served = time.perf_counter() - asked
    cut = t.wait(lambda: t.metric("timbre_rejections_total", 'reason="slow_client"') - before >= 16, 60)
    total = time.perf_counter() - start
    cut_count = t.metric("timbre_rejections_total", 'reason="slow_client"') - before
    for s in socks:
        s.close()
    return [
        f"16 clients that stop reading, then \"Hello.\": {status} after {served:.1f} s ({len(wav)} bytes)",
        f"all 16 cut off {total:.1f} s after they connected (WriteStallSeconds {stall_seconds:g}); slow_client rejections: {cut_count:.0f}",
    ] if cut is not None else [f"16 non-reading clients were NOT all cut off within 60 s; \"Hello.\" got {status} after {served:.1f} s"]


def bad_input(t: Timbre) -> list[str]:
    c = t.conn()
    c.request("POST", "/v1/speech", body=json.dumps({"text": "9" * 5000, "voice": "ada", "stream": True, "format": "pcm"}),
              headers={"Authorization": f"Bearer {t.key}", "Content-Type": "application/json"})
    r = c.getresponse()
    got = len(r.read(48000)) if r.status == 200 else 0
    c.close()
    raw = b'{"voice": "ada", "text": "\xff\xfe hi"}'
    status_utf8, _, problem = t.request("POST", "/v1/speech", raw, headers={"Content-Type": "application/json"})
    status_sur, _, _ = t.request("POST", "/v1/speech", b'{"voice": "ada", "text": "\\ud800 hi"}', headers={"Content-Type": "application/json"})
    lines = [
        f"5000 digits in a row: {r.status}, speech streamed ({got} bytes read)",
        f"invalid UTF-8 in text: {status_utf8} ({json.loads(problem).get('detail', '')[:60]}…); lone surrogate: {status_sur}",
    ]
    names = []
    for name in ["Café", unicodedata.normalize("NFD", "Café"), "Cafe", "Ольга", "日本語"]:
        boundary = "probe"
        sample = open(os.environ["PROBE_SAMPLE"], "rb").read()
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"ref.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode() + sample + f"\r\n--{boundary}--\r\n".encode()
        status, _, reply = t.request("POST", "/v1/voices", form, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        label = "Café (NFD)" if name != unicodedata.normalize("NFC", name) else name
        names.append(f"{label} → {json.loads(reply)['id'] if status == 201 else status}")
    lines.append("voice names: " + ", ".join(names))
    return lines


def drain(t: Timbre, pid: int) -> list[str]:
    with cf.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(stream_body, t, LONG[:1200]) for _ in range(6)]
        t.wait(lambda: t.metric("timbre_streams_in_flight", 'engine="classic"') >= 6, 30)
        os.kill(pid, signal.SIGTERM)
        results = [f.result() for f in futures]
    done = sum(1 for s, n in results if s == 200 and n > 24000 * 2 * 10)
    return [f"SIGTERM with 6 streams in flight: {done}/6 finished whole"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--timbre", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--stall-seconds", type=float, required=True)
    a = p.parse_args()
    t = Timbre(a.timbre, a.key)
    for title, step in [("auth", lambda: auth(t)), ("overload", lambda: burst(t)), ("hang-ups", lambda: leaving(t)),
                        ("clients that stop reading", lambda: stalled(t, a.stall_seconds)), ("bad input", lambda: bad_input(t)),
                        ("shutdown", lambda: drain(t, a.pid))]:
        print(f"probe: {title}", flush=True)
        for line in step():
            print(f"  - {line}", flush=True)


if __name__ == "__main__":
    main()
