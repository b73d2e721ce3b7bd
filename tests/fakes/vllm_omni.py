"""A stand-in for vLLM-Omni serving a Qwen3-TTS checkpoint: its POST /v1/audio/speech contract, faithfully.

The tests cannot run vLLM-Omni (no GPU, no model hub), so this server answers as its speech API is
documented (docs/serving/speech_api.md upstream, ../shared/ENGINES.md): the same fields and
defaults, the same checks and error bodies ({"error": {"message", "type", "param", "code"}}), raw
s16le 24 kHz PCM streamed as it is made for stream_format="audio", OpenAI speech.audio.* SSE events
for stream=true or stream_format="sse", a whole WAV otherwise. The speech itself is espeak-ng's,
resampled to 24 kHz and paced like a GPU generating faster than real time.

    python3 vllm_omni.py --model Qwen/Qwen3-TTS-12Hz-0.6B-Base [--port 0] [--api-key KEY]

It prints "listening PORT" once ready. For the tests only, it also serves:
    POST /fake/mode {"mode": "ok" | "hang" | "fail" | "sse" | "cut"}  how the next requests behave:
        hang: send nothing until the client leaves; fail: HTTP 500; sse: answer every stream with SSE
        (a server build without raw audio streaming); cut: close the connection after the first audio
    GET /fake/requests  every speech request received: its body (ref_audio shortened) and how it ended
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from scipy.signal import resample_poly

LANGUAGES = ["Auto", "Chinese", "English", "Japanese", "Korean", "German", "French", "Russian", "Portuguese", "Spanish", "Italian"]
SPEAKERS = ["aiden", "dylan", "eric", "ono_anna", "ryan", "serena", "sohee", "uncle_fu", "vivian"]
FORMATS = ["wav", "pcm", "flac", "mp3", "aac", "opus"]
RATE = 24000
CHUNK = 4800  # 200 ms: one decoded codec window


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, code: int = 400, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.kind = message, param, code, kind


def task_of_checkpoint(model: str) -> str:
    name = model.lower()
    if "customvoice" in name:
        return "CustomVoice"
    if "voicedesign" in name:
        return "VoiceDesign"
    return "Base"


def speak(text: str) -> np.ndarray:
    """espeak-ng's speech for one sentence, as int16 at 24 kHz."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", f.name, text], check=True, capture_output=True)
        with wave.open(f.name) as w:
            rate = w.getframerate()
            audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
    if rate != RATE:
        g = np.gcd(rate, RATE)
        audio = resample_poly(audio, RATE // g, rate // g)
    return np.clip(audio, -32768, 32767).astype(np.int16)


class Fake:
    def __init__(self, model: str, api_key: str | None, pace: float) -> None:
        self.model, self.api_key, self.pace = model, api_key, pace
        self.task = task_of_checkpoint(model)
        self.mode = "ok"
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def check(self, body: object) -> dict:
        """The request as vLLM-Omni validates it; raises BadRequest with its message."""
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object")
        text = body.get("input")
        if not isinstance(text, str):
            raise BadRequest("Field required: input", "input")
        if not text.strip():
            raise BadRequest("Input text cannot be empty", "input")
        model = body.get("model")
        if model is not None and model != self.model:
            raise BadRequest(f"The model `{model}` does not exist.", "model", 404, "NotFoundError")
        fmt = body.get("response_format", "wav")
        if fmt not in FORMATS:
            raise BadRequest(f"response_format must be one of {', '.join(FORMATS)}", "response_format")
        speed = body.get("speed", 1.0)
        if not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
            raise BadRequest("speed must be between 0.25 and 4.0", "speed")
        stream_format = body.get("stream_format")
        if stream_format not in (None, "sse", "audio"):
            raise BadRequest("stream_format must be 'sse' or 'audio'", "stream_format")
        streaming = bool(body.get("stream")) or stream_format is not None
        if streaming and fmt not in ("pcm", "wav"):
            raise BadRequest("Streaming requires response_format 'pcm' or 'wav'", "response_format")
        if streaming and abs(float(speed) - 1.0) > 1e-9:
            raise BadRequest("Streaming requires speed 1.0", "speed")
        language = body.get("language", "Auto")
        if language not in LANGUAGES:
            raise BadRequest(f"Unsupported language: {language}. Supported: {', '.join(LANGUAGES)}", "language")
        task = body.get("task_type")
        if task is None:
            task = "Base" if body.get("ref_audio") or body.get("ref_text") else "CustomVoice"
        if task not in ("Base", "CustomVoice", "VoiceDesign"):
            raise BadRequest(f"Unsupported task_type: {task}", "task_type")
        if task != self.task:
            raise BadRequest(
                f"Qwen3-TTS {self.task} checkpoint does not support task_type='{task}'. "
                f"Use task_type='{self.task}' or load the matching {task} checkpoint.")
        if task == "Base":
            ref = body.get("ref_audio")
            if not isinstance(ref, str) or not ref:
                raise BadRequest("Base task requires 'ref_audio' for voice cloning", "ref_audio")
            if ref.startswith("data:"):
                try:
                    data = base64.b64decode(ref.split(",", 1)[1], validate=True)
                    with wave.open(io.BytesIO(data)) as w:
                        if w.getnframes() < w.getframerate():
                            raise BadRequest("ref_audio is shorter than 1 second", "ref_audio")
                except (ValueError, IndexError, wave.Error, EOFError) as e:
                    raise BadRequest(f"ref_audio could not be decoded: {e}", "ref_audio") from e
            elif not re.match(r"^(https?|file)://", ref):
                raise BadRequest("ref_audio must be an http(s) URL, a base64 data URL or a file:// URI", "ref_audio")
            if not body.get("ref_text") and not body.get("x_vector_only_mode"):
                raise BadRequest("ref_text is required for in-context voice cloning unless x_vector_only_mode is true", "ref_text")
        elif task == "CustomVoice":
            voice = body.get("voice", "vivian")
            if str(voice).lower() not in SPEAKERS:
                raise BadRequest(f"Invalid speaker '{voice}'. Supported: {', '.join(SPEAKERS)}", "voice")
        elif not body.get("instructions"):
            raise BadRequest("VoiceDesign task requires 'instructions' describing the voice", "instructions")
        return {"text": text, "format": fmt, "streaming": streaming,
                "sse": bool(body.get("stream")) and stream_format != "audio" or stream_format == "sse"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: Fake

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _json(self, code: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, e: BadRequest) -> None:
        self._json(e.code, {"error": {"message": e.message, "type": e.kind, "param": e.param, "code": e.code}})

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self) -> None:
        if self.path == "/fake/requests":
            with self.fake.lock:
                self._json(200, self.fake.requests)
        elif self.path == "/v1/audio/voices":
            self._json(200, {"voices": SPEAKERS if self.fake.task == "CustomVoice" else [], "uploaded_voices": []})
        elif self.path in ("/health", "/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": self.fake.model, "object": "model"}]} if self.path == "/v1/models" else {})
        else:
            self._json(404, {"error": {"message": "Not Found", "type": "NotFoundError", "param": None, "code": 404}})

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        raw = self._body()
        if self.path == "/fake/mode":
            self.fake.mode = json.loads(raw)["mode"]
            self._json(200, {"mode": self.fake.mode})
            return
        if self.path != "/v1/audio/speech":
            self._json(404, {"error": {"message": "Not Found", "type": "NotFoundError", "param": None, "code": 404}})
            return
        if self.fake.api_key and self.headers.get("Authorization") != f"Bearer {self.fake.api_key}":
            self._json(401, {"error": "Unauthorized"})
            return
        record: dict = {"outcome": "running"}
        try:
            body = json.loads(raw)
            if isinstance(body, dict):
                record["body"] = {k: (v[:40] + f"...({len(v)} chars)" if k == "ref_audio" and isinstance(v, str) else v) for k, v in body.items()}
            with self.fake.lock:
                self.fake.requests.append(record)
            request = self.fake.check(body)
        except json.JSONDecodeError as e:
            record["outcome"] = "refused"
            self._error(BadRequest(f"Invalid JSON: {e}"))
            return
        except BadRequest as e:
            record["outcome"], record["error"] = "refused", e.message
            self._error(e)
            return
        mode = self.fake.mode
        record["mode"] = mode
        if mode == "fail":
            record["outcome"] = "failed"
            self._error(BadRequest("CUDA out of memory", None, 500, "InternalServerError"))
            return
        try:
            record["outcome"] = self._speak(request, mode)
        except (BrokenPipeError, ConnectionResetError):
            record["outcome"] = "aborted"
            self.close_connection = True

    def _speak(self, request: dict, mode: str) -> str:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", request["text"].strip()) if s]
        if not request["streaming"]:
            audio = np.concatenate([speak(s) for s in sentences])
            data = io.BytesIO()
            with wave.open(data, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(audio.tobytes())
            payload = data.getvalue() if request["format"] == "wav" else audio.tobytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav" if request["format"] == "wav" else "audio/pcm")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return "completed"
        sse = request["sse"] or mode == "sse"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if sse else ("audio/wav" if request["format"] == "wav" else "audio/pcm"))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if mode == "hang":
            # Headers sent, then nothing: a wedged GPU worker. Ends when the client gives up.
            self.connection.settimeout(0.2)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if self.connection.recv(1, 0x40) == b"":  # MSG_DONTWAIT: b"" once the peer closed
                        return "aborted"
                except (BlockingIOError, TimeoutError, OSError):
                    pass
                time.sleep(0.05)
            return "hung"
        if request["format"] == "wav" and not sse:
            header = io.BytesIO()
            with wave.open(header, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
            self._chunk(header.getvalue()[:-4] + b"\xff\xff\xff\xff")  # a streamed WAV: sizes unknown
        sent = 0
        for sentence in sentences:
            audio = speak(sentence)
            for start in range(0, len(audio), CHUNK):
                piece = audio[start:start + CHUNK].tobytes()
                time.sleep(self.fake.pace * len(piece) / 2 / RATE)
                if sse:
                    event = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode(), "response_format": "pcm"}
                    self._chunk(f"event: speech.audio.delta\ndata: {json.dumps(event)}\n\n".encode())
                else:
                    self._chunk(piece)
                sent += 1
                if mode == "cut":
                    # The server dies mid-stream: the connection closes without the last chunk.
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return "cut"
        if sse:
            done = {"type": "speech.audio.done", "usage": {"input_tokens": 0, "output_tokens": sent, "total_tokens": sent}}
            self._chunk(f"event: speech.audio.done\ndata: {json.dumps(done)}\n\n".encode())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return "completed"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="Qwen/Qwen3-TTS-12Hz-0.6B-Base")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key")
    ap.add_argument("--pace", type=float, default=0.05, help="seconds of generation per second of audio")
    args = ap.parse_args()
    Handler.fake = Fake(args.model, args.api_key, args.pace)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
