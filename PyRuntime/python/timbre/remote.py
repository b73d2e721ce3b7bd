"""Engines that run elsewhere, as the Python side sees them: what they are and what to send them.

The front node's .NET code does the HTTP (endpoints, retries, streaming); this module holds what
depends on the model behind an `openai-speech` endpoint (vLLM-Omni serving Qwen3-TTS, ENGINES.md):
which task its checkpoint runs, the language names it takes, which sample clones the voice, and the
text preparation every Timbre engine applies. For a `timbre` endpoint (another Timbre node, the README's
node API) it names the voice's samples, and the folder of its active fine-tuned version, by content
hash, so the worker keeps a copy of each once and needs no voice library. A remote engine's audio is
marked on the front (`Marker` in host.py), as the local engines' audio is, because the server that made
it does not.
"""
from __future__ import annotations

import base64
import hashlib
import os
from typing import Any, Sequence

from .engines import describe as describe_engine
from .engines import versions
from .engines.protocol import EngineInputError, VoiceSample, by_role
from .engines.qwen3 import LANGUAGES, SPEAKERS, language_name, model_type
from .textprep import prepare

# The reference audio each request carries, by file and modification time: a voice speaks many times.
_references: dict[tuple[str, int], str] = {}
# Sample files' SHA-256 by file, size and modification time.
_hashes: dict[tuple[str, int, int], str] = {}
# Version folders' digests by folder and every file's name, size and modification time.
_folders: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
# The roles a Timbre worker is sent as audio files; a fine-tuned version (role "model") goes as a folder.
NODE_ROLES = ("sample", "prompt", "reference")


def describe_openai_speech(name: str, model: str) -> dict[str, Any]:
    """The description of a remote Qwen3-TTS checkpoint served with the OpenAI speech contract."""
    kind = model_type(model or "Base")
    capabilities = {
        "base": ["clone"],
        "custom_voice": ["speakers"] + ([] if "0.6b" in model.lower() else ["instructions"]),
        "voice_design": ["design", "instructions"],
    }[kind]
    return {
        "name": name,
        "title": f"Qwen3-TTS on remote openai-speech endpoints ({model or 'the server default model'})",
        "gpu": True,
        "model": model,
        "mode": kind,
        "languages": sorted(LANGUAGES),
        "capabilities": capabilities,
        "speakers": SPEAKERS if kind == "custom_voice" else [],
        "license": "Apache-2.0",
        "available": True,
        "reason": None,
    }


def openai_speech_body(model: str, request: dict[str, Any], samples: Sequence[VoiceSample]) -> dict[str, Any]:
    """The JSON body of one streamed POST /v1/audio/speech: raw 16-bit PCM at 24 kHz, as it is decoded.

    Speed is refused rather than ignored: the upstream server streams only at speed 1.0.
    """
    kind = model_type(model or "Base")
    speed = float(request.get("speed") or 1.0)
    if abs(speed - 1.0) > 1e-9:
        raise EngineInputError(
            "this engine runs on a remote server that streams only at normal speed; leave speed out (or 1.0)",
            field="speed",
        )
    instructions = (request.get("instructions") or "").strip() or None
    body: dict[str, Any] = {
        "input": prepare(request["text"], request.get("language")),
        "response_format": "pcm",
        "stream_format": "audio",
        "language": language_name(request.get("language")),
    }
    if model:
        body["model"] = model
    if kind == "base":
        if instructions:
            raise EngineInputError(
                "instructions need a Qwen3 CustomVoice (1.7B) or VoiceDesign model; this remote engine serves "
                f"a Base model ({model or 'the server default'}) that clones voices without them",
                field="instructions",
            )
        prompt = by_role(samples, "prompt")
        if not prompt:
            raise EngineInputError("the voice has no samples to clone from", field="voice")
        body["task_type"] = "Base"
        body["ref_audio"] = _reference(prompt[0].path)
        if prompt[0].transcript:
            body["ref_text"] = prompt[0].transcript
        else:
            # Without a transcript the server clones from the speaker embedding alone (no in-context prompt).
            body["x_vector_only_mode"] = True
    elif kind == "custom_voice":
        speaker = (request.get("options") or {}).get("speaker")
        if not speaker:
            raise EngineInputError(f"this remote engine speaks as one of {', '.join(SPEAKERS)}: name one as the voice", field="voice")
        body["task_type"] = "CustomVoice"
        body["voice"] = speaker.lower()
        if instructions:
            body["instructions"] = instructions
    else:
        if not instructions:
            raise EngineInputError("the remote VoiceDesign model needs instructions that describe the voice to speak in", field="instructions")
        body["task_type"] = "VoiceDesign"
        body["instructions"] = instructions
    return body


def _reference(path: str) -> str:
    """A WAV file as the base64 data URL `ref_audio` takes."""
    key = (path, os.stat(path).st_mtime_ns)
    found = _references.get(key)
    if found is None:
        with open(path, "rb") as f:
            found = "data:audio/wav;base64," + base64.b64encode(f.read()).decode("ascii")
        if len(_references) > 64:
            _references.clear()
        _references[key] = found
    return found


def describe_timbre(name: str, model: str) -> dict[str, Any]:
    """A Timbre worker's engine, described as this node's own code describes that engine: the same release
    runs on both. Availability is the endpoints' to say (their circuit breakers), not this machine's."""
    engine = model or "classic"
    try:
        local = describe_engine(engine, {})
    except EngineInputError as e:
        raise ValueError(f"a timbre remote engine's Model names one of the worker's engines (classic, qwen3, xtts), not {engine!r}") from e
    return {
        **local,
        "name": name,
        "title": f"{local.get('title') or engine} on remote Timbre nodes",
        "available": True,
        "reason": None,
    }


def timbre_body(model: str, request: dict[str, Any], samples: Sequence[VoiceSample]) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON body of POST /v1/cluster/speech on a worker, and each named sample's file (or version
    folder) by its SHA-256 (what the front uploads when the worker answers that it lacks one).

    The voice's active fine-tuned version goes only when the worker's engine trained it: another engine's
    version would be ignored there (the zero-shot clone speaks), and a GPU version is gigabytes."""
    engine = model or "classic"
    files: dict[str, str] = {}
    named = []
    for s in samples:
        if s.role == "model":
            found = versions.active([s], engine)
            if found is None:
                continue
            digest = folder_digest(found[0])
            named.append({"sha256": digest, "transcript": None, "role": "model"})
        elif s.role in NODE_ROLES:
            digest = _sha256(s.path)
            named.append({"sha256": digest, "transcript": s.transcript, "role": s.role})
        else:
            continue
        files[digest] = s.path
    options = request.get("options") or {}
    body = {
        "engine": engine,
        "text": request["text"],
        "language": request.get("language"),
        "speed": request.get("speed"),
        "instructions": request.get("instructions"),
        "speaker": options.get("speaker"),
        "samples": named,
    }
    return body, files


def folder_digest(folder: str) -> str:
    """The content digest of a version folder, as a worker checks it (NodeSamples.SaveModelAsync in C#):
    the SHA-256 of one line per regular file, "<file's SHA-256> <size> <path relative to the folder, with
    />", sorted by that path's UTF-8 bytes. A link to a file counts as that file; directories do not count."""
    listing = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if not os.path.isfile(path):
                continue
            st = os.stat(path)
            listing.append((os.path.relpath(path, folder).replace(os.sep, "/"), st.st_size, st.st_mtime_ns))
    listing.sort(key=lambda item: item[0].encode("utf-8"))
    key = (os.path.abspath(folder), tuple(listing))
    found = _folders.get(key)
    if found is None:
        lines = "".join(f"{_sha256(os.path.join(folder, rel))} {size} {rel}\n" for rel, size, _ in listing)
        found = hashlib.sha256(lines.encode("utf-8")).hexdigest()
        if len(_folders) > 256:
            _folders.clear()
        _folders[key] = found
    return found


def _sha256(path: str) -> str:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    found = _hashes.get(key)
    if found is None:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        found = digest.hexdigest()
        if len(_hashes) > 1024:
            _hashes.clear()
        _hashes[key] = found
    return found
