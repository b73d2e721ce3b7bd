"""The reference design users copy from blog posts: FastAPI calls the engine, then returns base64 JSON.

Same engine, same voice as Timbre; nothing streams: the response leaves when synthesis is complete.
Run: python3 fastapi_reference.py --port N --voice-dir DIR --sample WAV
"""
from __future__ import annotations

import argparse
import base64
import io
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "PyRuntime" / "python"))

from timbre.engines import SpeechRequest, VoiceSample, create  # noqa: E402


class Tts(BaseModel):
    text: str


def build(voice_dir: str, sample: str) -> FastAPI:
    engine = create("classic", {})
    engine.load()
    samples = [VoiceSample(sample, None)]
    engine.prepare_voice(voice_dir, samples)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/tts")
    def tts(body: Tts) -> dict[str, object]:
        request = SpeechRequest(text=body.text, language=None, speed=1.0, instructions=None)
        audio = np.concatenate(list(engine.stream(voice_dir, samples, request)))
        buffer = io.BytesIO()
        sf.write(buffer, audio, engine.sample_rate, format="WAV", subtype="PCM_16")
        return {"sample_rate": engine.sample_rate, "audio": base64.b64encode(buffer.getvalue()).decode("ascii")}

    return app


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--voice-dir", required=True)
    ap.add_argument("--sample", required=True)
    a = ap.parse_args()
    uvicorn.run(build(a.voice_dir, a.sample), host="127.0.0.1", port=a.port, log_level="warning")
