"""The functions PyRuntime's callers invoke. Arguments and results are strings (JSON) and arrays."""
from __future__ import annotations

import json
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

import numpy as np

from . import provenance
from .engines import Engine, SpeechRequest, VoiceSample, create, describe as describe_engine
from .textprep import prepare

_engines: dict[str, Engine] = {}
# The settings each engine was last loaded with: an engine unloaded while idle comes back with them.
_options: dict[str, str] = {}
# Mark patterns by key file: one per data directory (tests run several servers in one interpreter).
_patterns: dict[str, provenance.Pattern] = {}


def _engine(name: str) -> Engine:
    if name not in _engines:
        if name not in _options:
            raise LookupError(f"engine '{name}' is not loaded")
        load(name, _options[name])
    return _engines[name]


def _samples(samples_json: str) -> list[VoiceSample]:
    return [VoiceSample(s["path"], s.get("transcript"), s.get("role") or "sample") for s in json.loads(samples_json)]


def describe(name: str, options_json: str) -> str:
    """The engine's description and availability, without loading it."""
    return json.dumps(describe_engine(name, json.loads(options_json or "{}")))


def load(name: str, options_json: str) -> str:
    """Create and load an engine once; later calls return the loaded one."""
    engine = _engines.get(name)
    if engine is None:
        engine = create(name, json.loads(options_json or "{}"))
        engine.load()
        _engines[name] = engine
        _options[name] = options_json
    return json.dumps({"name": engine.name, "sample_rate": engine.sample_rate, "languages": engine.languages()})


def unload(name: str) -> bool:
    """Drop a loaded engine and free what it holds (GPU memory); False when it was not loaded."""
    engine = _engines.pop(name, None)
    if engine is None:
        return False
    release = getattr(engine, "unload", None)
    if release is not None:
        release()
    return True


# Enrolment (speech recognition above all) takes seconds; it runs on a worker thread so the embedding
# thread stays free for speech streams, and the caller polls for the result.
_enrolment = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrol")
_enrolments: dict[str, Future] = {}


def enrol_start(voice_dir: str, samples_json: str, language: str) -> str:
    from .enrol import enrol

    job = uuid.uuid4().hex
    _enrolments[job] = _enrolment.submit(enrol, voice_dir, json.loads(samples_json), language or None)
    return job


def enrol_result(job: str) -> str:
    """'' while the enrolment runs; then its report (JSON), or its exception, once."""
    future = _enrolments[job]
    if not future.done():
        return ""
    del _enrolments[job]
    return json.dumps(future.result())


def enrol_forget(job: str) -> None:
    """The caller gave up: drop the result whenever it comes."""
    future = _enrolments.pop(job, None)
    if future is not None:
        future.cancel()


def prepare_voice(name: str, voice_dir: str, samples_json: str) -> str:
    profile = _engine(name).prepare_voice(voice_dir, _samples(samples_json))
    # Only the figures a person reads; filters and prompts stay in the cache.
    return json.dumps({k: v for k, v in profile.items() if isinstance(v, (int, float, str, bool))})


def _pattern(key_path: str) -> provenance.Pattern:
    if key_path not in _patterns:
        _patterns[key_path] = provenance.Key.load(key_path).pattern()
    return _patterns[key_path]


def provenance_start(key_path: str) -> None:
    """Loads the install's key at start-up, so a damaged key stops the server instead of its first request."""
    _pattern(key_path)


def provenance_detect(key_path: str, wav_path: str) -> str:
    import soundfile

    audio, rate = soundfile.read(wav_path, dtype="float32", always_2d=False)
    found = provenance.detect(audio, rate, _pattern(key_path))
    return json.dumps({
        "detected": found.detected,
        "score": found.score,
        "threshold": provenance.THRESHOLD,
        "tag": found.tag,
        "payload_valid": found.payload_valid,
        "seconds": round(found.seconds, 3),
        "windows": [{"start": w.start, "end": w.end, "score": w.score} for w in found.windows],
    })


def stream(name: str, voice_dir: str, samples_json: str, request_json: str) -> Iterator[np.ndarray]:
    """The engine's chunks carrying the provenance mark. A request must say how to mark ({"key", "tag"}),
    or that the owner turned marking off (tag null); one that says neither is refused, never left unmarked."""
    r = json.loads(request_json)
    engine = _engine(name)
    mark = r.get("mark")
    if not isinstance(mark, dict) or "key" not in mark or "tag" not in mark:
        raise RuntimeError("refusing to stream audio without the provenance mark: the request does not say how to mark it")
    marker = None if mark["tag"] is None else provenance.Marker(_pattern(mark["key"]), int(mark["tag"]), engine.sample_rate)
    request = SpeechRequest(
        text=prepare(r["text"], r.get("language")),
        language=r.get("language"),
        speed=float(r.get("speed") or 1.0),
        instructions=r.get("instructions"),
        options={k: v for k, v in (r.get("options") or {}).items() if v is not None},
    )
    for chunk in engine.stream(voice_dir, _samples(samples_json), request):
        out = np.ascontiguousarray(chunk, dtype=np.float32)
        if marker is not None:
            out = marker.push(out)
            if len(out) == 0:
                continue
        yield out
    if marker is not None:
        tail = marker.finish()
        if len(tail):
            yield tail


def remote_describe(kind: str, name: str, model: str) -> str:
    """A remote engine's description, from what its configuration says it serves."""
    from . import remote

    if kind == "openai-speech":
        return json.dumps(remote.describe_openai_speech(name, model))
    if kind == "timbre":
        return json.dumps(remote.describe_timbre(name, model))
    raise ValueError(f"no description for remote kind {kind!r}")


def remote_body(kind: str, model: str, samples_json: str, request_json: str) -> str:
    """What a remote engine of this kind is sent (timbre/remote.py): {"body": the request's JSON body,
    "files": sample files by SHA-256, for a worker that asks for them}."""
    from . import remote

    request, samples = json.loads(request_json), _samples(samples_json)
    if kind == "openai-speech":
        return json.dumps({"body": remote.openai_speech_body(model, request, samples), "files": {}})
    if kind == "timbre":
        body, files = remote.timbre_body(model, request, samples)
        return json.dumps({"body": body, "files": files})
    raise ValueError(f"no request body for remote kind {kind!r}")


def mark_open(key_path: str, tag: int, sample_rate: int) -> provenance.Marker:
    """A marker for audio made elsewhere: a remote engine's stream is marked on the front, chunk by chunk."""
    return provenance.Marker(_pattern(key_path), int(tag), int(sample_rate))


def mark_push(marker: provenance.Marker, samples: bytes) -> np.ndarray:
    """Float32 samples in (as bytes); the part now final, marked, out."""
    return np.ascontiguousarray(marker.push(np.frombuffer(samples, dtype=np.float32)), dtype=np.float32)


def mark_finish(marker: provenance.Marker) -> np.ndarray:
    return np.ascontiguousarray(marker.finish(), dtype=np.float32)
