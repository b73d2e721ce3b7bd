"""ops/check-gpu: synthesise one sentence with every engine that can run here; print time to first
audio and real-time factor. Reads the engines' settings from the same environment variables the
server reads (Timbre__Engine__Qwen3__Model, …), as ops/install-gpu writes them to timbre.env."""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

import numpy as np

from timbre.audio import synthesise_reference
from timbre.engines import NAMES, create, describe
from timbre.engines.protocol import EngineInputError, EngineUnavailableError, SpeechRequest, VoiceSample

SENTENCE = "The birch canoe slid on the smooth planks, and the boy was there when the sun rose."
REFERENCE_TEXT = "The small pup gnawed a hole in the sock. The fish twisted and turned on the bent hook."


def engine_options(engine: str, environ: dict[str, str]) -> dict[str, object]:
    """Timbre__Engine__<Engine>__<Setting>=value → {"setting": value} as the engine takes it."""
    prefix = f"Timbre__Engine__{engine.capitalize() if engine != 'qwen3' else 'Qwen3'}__"
    options: dict[str, object] = {}
    for key, value in environ.items():
        if not key.startswith(prefix):
            continue
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key[len(prefix):]).lower()
        options[name] = (value.lower() == "true") if value.lower() in ("true", "false") else int(value) if value.isdigit() else value
    return options


def reference(folder: str) -> str:
    """A reference voice when none is given: espeak-ng, resampled to 24 kHz mono."""
    return synthesise_reference(["espeak-ng", "-v", "en-us+f3"], REFERENCE_TEXT, os.path.join(folder, "reference.wav"))


def check(engine_name: str, options: dict[str, object], voice_dir: str, samples: list[VoiceSample]) -> str:
    info = describe(engine_name, options)
    label = f"{engine_name:8} {info.get('model') or '':44.44}"
    if not info["available"]:
        return f"{label} unavailable: {info['reason']}"
    engine = create(engine_name, options)
    started = time.perf_counter()
    engine.load()
    loaded = time.perf_counter() - started
    engine.prepare_voice(voice_dir, samples)
    speaker = (info.get("speakers") or [None])[0]
    instructions = "A calm, clear voice." if "design" in info.get("capabilities", []) else None
    request = SpeechRequest(text=SENTENCE, language="en", instructions=instructions, options={"speaker": speaker, "seed": 1})
    begin = time.perf_counter()
    first = None
    samples_out = 0
    for chunk in engine.stream(voice_dir, samples, request):
        if first is None:
            first = time.perf_counter() - begin
        samples_out += len(chunk)
    total = time.perf_counter() - begin
    seconds = samples_out / engine.sample_rate
    return f"{label} load {loaded:6.1f} s   first audio {first * 1000:7.0f} ms   RTF {total / max(seconds, 1e-9):6.3f}   ({seconds:.1f} s of audio)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voice", help="a reference WAV (24 kHz mono); default: one made with espeak-ng")
    parser.add_argument("--transcript", help="what the reference says (enables Qwen3's ICL mode)")
    parser.add_argument("--engines", default=",".join(NAMES), help="comma-separated engines to check")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="timbre-check-") as folder:
        path = args.voice or reference(folder)
        transcript = args.transcript if args.voice else REFERENCE_TEXT
        samples = [VoiceSample(path, transcript)]
        print(f"check-gpu: one sentence ({len(SENTENCE)} characters) per engine, python {sys.version.split()[0]}")
        failed = False
        for name in args.engines.split(","):
            try:
                print(check(name.strip(), engine_options(name.strip(), dict(os.environ)), folder, samples), flush=True)
            except (EngineInputError, EngineUnavailableError) as e:
                print(f"{name:8} failed: {e}", flush=True)
                failed = True
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
