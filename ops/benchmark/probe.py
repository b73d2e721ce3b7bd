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
import subprocess
import threading
import time
import tempfile
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
    sample = open(os.environ["PROBE_SAMPLE"], "rb").read()
    for name in ["Café", unicodedata.normalize("NFD", "Café"), "Cafe", "Ольга", "日本語"]:
        body, headers = multipart(name, "ref.wav", sample)
        status, _, reply = t.request("POST", "/v1/voices", body, headers=headers)
        label = "Café (NFD)" if name != unicodedata.normalize("NFC", name) else name
        names.append(f"{label} → {json.loads(reply)['id'] if status == 201 else status}")
    lines.append("voice names: " + ", ".join(names))
    return lines


def multipart(name: str, filename: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "probe-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def traversal_and_ssrf(t: Timbre) -> list[str]:
    paths = ["/v1/voices/..%2F..%2Fetc%2Fpasswd", "/v1/voices/%2e%2e", "/v1/voices/..%5C..%5Cetc", "/v1/voices/ada%2F..%2F..",
             "/v1/voices/.staging", "/v1/voices/%C0%AE%C0%AE%2Fetc"]
    answers = [t.request("GET", p)[0] for p in paths] + [t.request("DELETE", p)[0] for p in paths]
    leaked = sum(b"root:" in t.request("GET", p)[2] for p in paths)
    # Files that make ffmpeg open a URL: the server must refuse them without reaching the listener.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    traps = {
        "hls.wav": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:{port}/a.ts\n#EXT-X-ENDLIST\n",
        "concat.wav": f"ffconcat version 1.0\nfile 'http://127.0.0.1:{port}/a.wav'\n",
        "list.m3u.wav": f"http://127.0.0.1:{port}/b.wav\n",
        "sdp.wav": f"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP 0\n",
    }
    statuses = []
    for filename, text in traps.items():
        body, headers = multipart(f"trap {filename.split('.')[0]}", filename, text.encode())
        statuses.append(t.request("POST", "/v1/voices", body, headers=headers)[0])
    reached = 0
    deadline = time.time() + 2
    while time.time() < deadline:
        try:
            listener.accept()[0].close()
            reached += 1
        except OSError:
            pass
    listener.close()
    return [
        f"{len(answers)} traversal attempts (GET and DELETE, encoded dots and slashes): statuses {sorted(set(answers))}, file contents leaked: {leaked}",
        f"HLS, ffconcat, playlist and SDP files disguised as audio: statuses {statuses}; connections to the loopback listener they name: {reached}",
    ]


def killed_enrolment(server: list[str], sample: bytes) -> list[str]:
    """Starts Timbre on a fresh library, kills it with SIGKILL at points of an upload, restarts, checks the library."""
    data = tempfile.mkdtemp(prefix="timbre-kill-")
    port = free_port()

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(server + ["--urls", f"http://127.0.0.1:{port}", "--Timbre:DataDirectory", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t = Timbre(f"http://127.0.0.1:{port}", "")
        for _ in range(240):
            try:
                if t.request("GET", "/ready", key=None)[0] == 200:
                    return proc
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError("the server did not come back")

    t = Timbre(f"http://127.0.0.1:{port}", "")
    outcomes = []
    for i, delay in enumerate([0.05, 0.3, 0.8, 1.5, 3.0]):
        proc = start()
        body, headers = multipart(f"Killed {i}", "take.wav", sample)
        upload = threading.Thread(target=lambda: _ignore(lambda: t.request("POST", "/v1/voices", body, key=None, headers=headers)))
        upload.start()
        time.sleep(delay)
        proc.kill()
        proc.wait()
        upload.join()
        proc = start()
        status, _, listing = t.request("GET", "/v1/voices", key=None)
        voices = {v["id"]: v for v in json.loads(listing)}
        folders = sorted(f for f in os.listdir(data) if not f.startswith("."))
        whole = all(voices.get(f, {}).get("samples") and t.request("POST", "/v1/speech", {"text": "Hello.", "voice": f}, key=None)[0] == 200
                    for f in folders)
        outcomes.append((delay, f"killed-{i}" in voices, whole and set(folders) == set(voices)))
        proc.terminate()
        proc.wait()
    ok = sum(o[2] for o in outcomes)
    kept = sum(o[1] for o in outcomes)
    return [f"SIGKILL at {', '.join(f'{o[0]:g}' for o in outcomes)} s into an enrolment: the library was whole after restart {ok}/5 times "
            f"(the voice present and speaking {kept} times, absent {5 - kept}; never half there)"]


def _ignore(call) -> None:
    try:
        call()
    except (OSError, http.client.HTTPException):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process(pid: int) -> tuple[int, int, int]:
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return rss, threads, len(os.listdir(f"/proc/{pid}/fd"))


def soak(t: Timbre, pid: int, seconds: float) -> list[str]:
    """Mixed traffic for a while: speech on every path, hang-ups, bad input, library reads."""
    def cycle(i: int) -> None:
        kind = i % 6
        if kind == 0:
            stream_body(t, "A short line for the soak.")
        elif kind == 1:
            stream_body(t, LONG, read_all=False)
        elif kind == 2:
            t.request("POST", "/v1/audio/speech", {"model": "tts-1", "input": "Soak test.", "voice": "ada", "response_format": "mp3"})
        elif kind == 3:
            t.request("POST", "/v1/speech", b'{"text": ', headers={"Content-Type": "application/json"})
        elif kind == 4:
            t.request("GET", "/v1/voices")
        else:
            t.request("GET", "/v1/voices/nobody")

    warm_end = time.time() + min(20, seconds / 4)
    i = 0
    with cf.ThreadPoolExecutor(4) as pool:
        while time.time() < warm_end:
            list(pool.map(cycle, range(i, i + 4)))
            i += 4
        before = process(pid)
        end = time.time() + seconds
        start = i
        while time.time() < end:
            list(pool.map(cycle, range(i, i + 4)))
            i += 4
    time.sleep(2)
    after = process(pid)
    return [f"{seconds:.0f} s soak after a warm-up, {i - start} operations (speech on three paths, hang-ups, malformed JSON, reads): "
            f"RSS {before[0]} → {after[0]} MiB, threads {before[1]} → {after[1]}, open files {before[2]} → {after[2]}"]


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
    p.add_argument("--soak-seconds", type=float, default=180)
    p.add_argument("--server", required=True, help="the command that starts a Timbre server, as a JSON list")
    a = p.parse_args()
    t = Timbre(a.timbre, a.key)
    sample = open(os.environ["PROBE_SAMPLE"], "rb").read()
    for title, step in [("auth", lambda: auth(t)), ("overload", lambda: burst(t)), ("hang-ups", lambda: leaving(t)),
                        ("clients that stop reading", lambda: stalled(t, a.stall_seconds)), ("bad input", lambda: bad_input(t)),
                        ("traversal and SSRF", lambda: traversal_and_ssrf(t)), ("soak", lambda: soak(t, a.pid, a.soak_seconds)),
                        ("shutdown", lambda: drain(t, a.pid)), ("SIGKILL during enrolment", lambda: killed_enrolment(json.loads(a.server), sample))]:
        print(f"probe: {title}", flush=True)
        for line in step():
            print(f"  - {line}", flush=True)


if __name__ == "__main__":
    main()
