"""The qwen3 engine: Qwen3-TTS (package `qwen_tts`) on the GPU.

Written against the package's documented API (see shared/ENGINES.md); the tests drive it with a
fake `qwen_tts` and `torch` that behave the same way. What the configured model is decides what the
engine does:

- Base: clones the Timbre voice — in ICL mode when the prompt has a transcript, else in
  x-vector-only mode. The clone prompt is built once per voice and cached on disk.
- CustomVoice: the model's built-in speakers (or a fine-tuned checkpoint's trained speaker), with
  `instructions` on the 1.7B model.
- VoiceDesign: `instructions` describe a new voice.
- A voice's fine-tuned version (finetune/trainers/qwen3.py: a sample with role "model" naming a
  version folder whose manifest says qwen3) is a CustomVoice checkpoint of its own: it is loaded
  beside the configured model (one version at a time) and speaks its trained speaker with
  language Auto, as the upstream script trained it.

The package cannot stream, so streaming is built here: the text is split into sentences and clauses,
each generated in order with the next one started while the current one is sent, seams crossfaded,
one prompt and one seed per request so the voice does not drift, and `max_new_tokens` capped from
each piece's length so a short input cannot run away.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, Iterator, Sequence

import numpy as np

from .. import cache
from ..text import Fragment, fragments
from .protocol import EngineInputError, EngineUnavailableError, SpeechRequest, VoiceSample, by_role
from . import versions
from .gpu import availability, free_cuda_memory, require_cuda, save_atomic, to_numpy
from .seams import Joiner, pipelined

VERSION = "1"
SAMPLE_RATE = 24000
DEFAULT_MODEL = "Qwen/Qwen3-TTS-12Hz-1.7B-Base"
FRAMES_PER_SECOND = 12.5
MAX_NEW_TOKENS = 2048

# ISO 639-1 codes ↔ the language names the package takes.
LANGUAGES = {
    "zh": "Chinese", "en": "English", "ja": "Japanese", "ko": "Korean", "de": "German",
    "fr": "French", "ru": "Russian", "pt": "Portuguese", "es": "Spanish", "it": "Italian",
}
SPEAKERS = ["Vivian", "Serena", "Uncle_Fu", "Dylan", "Eric", "Ryan", "Aiden", "Ono_Anna", "Sohee"]
_DTYPES = ("bfloat16", "float16", "float32")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def model_type(model: str) -> str:
    """base, custom_voice or voice_design: from a local model's config.json, else from the model id."""
    config = os.path.join(model, "config.json")
    if os.path.isfile(config):
        try:
            with open(config, encoding="utf-8") as f:
                kind = json.load(f).get("tts_model_type")
            if kind in ("base", "custom_voice", "voice_design"):
                return kind
        except (OSError, json.JSONDecodeError):
            pass
    name = os.path.basename(model.rstrip("/")).lower()
    if "customvoice" in name:
        return "custom_voice"
    if "voicedesign" in name:
        return "voice_design"
    return "base"


def language_name(code: str | None) -> str:
    """'en', 'en-US', 'English' or 'auto' → the package's name; anything else is refused."""
    if code is None or code.strip().lower() in ("", "auto"):
        return "Auto"
    key = code.strip().lower()
    if key in LANGUAGES:
        return LANGUAGES[key]
    if key.split("-")[0].split("_")[0] in LANGUAGES:
        return LANGUAGES[key.split("-")[0].split("_")[0]]
    for name in LANGUAGES.values():
        if name.lower() == key:
            return name
    raise EngineInputError(
        f"qwen3 does not speak '{code}'; use one of {', '.join(sorted(LANGUAGES))} or leave language out to detect it",
        field="language",
    )


def token_cap(text: str) -> int:
    """max_new_tokens for one piece: about twice its length spoken slowly, plus two seconds."""
    cjk = len(_CJK.findall(text))
    seconds = (len(text) - cjk) / 10.0 + cjk / 3.0
    return min(MAX_NEW_TOKENS, math.ceil(seconds * FRAMES_PER_SECOND) + 25)


class Qwen3Engine:
    name = "qwen3"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        dtype: str = "bfloat16",
        device: str = "cuda:0",
        attention: str = "auto",
        speaker: str | None = None,
        seed: int | None = None,
        max_chars: int = 160,
        crossfade_ms: float = 25.0,
        generation: dict[str, Any] | None = None,
    ) -> None:
        if dtype not in _DTYPES:
            raise EngineInputError(f"Timbre:Engine:Qwen3:Dtype is '{dtype}': use one of {', '.join(_DTYPES)}")
        self.model_id = model
        self.dtype = dtype
        self.device = device
        self.attention = attention
        self.speaker = speaker
        self.seed = seed
        self.max_chars = max_chars
        self.crossfade_s = crossfade_ms / 1000.0
        self.generation = dict(generation or {})
        self.kind = model_type(model)
        self._model: Any = None
        self._prompts: dict[str, Any] = {}
        # The fine-tuned version in use: its folder and its model.
        self._tuned: tuple[str, Any] | None = None
        self._lock = threading.Lock()
        # One generation at a time on the GPU; the next piece of a stream waits here while the
        # current one is sent.
        self._worker: ThreadPoolExecutor | None = None

    # -- registry ------------------------------------------------------------------------------
    @classmethod
    def describe(cls, options: dict[str, Any]) -> dict[str, Any]:
        model = str(options.get("model") or DEFAULT_MODEL)
        kind = model_type(model)
        capabilities = {
            "base": ["clone"],
            "custom_voice": ["speakers", "fine-tuned voices"] + ([] if "0.6b" in model.lower() else ["instructions"]),
            "voice_design": ["design", "instructions"],
        }[kind]
        speakers = ([options["speaker"]] if options.get("speaker") else SPEAKERS) if kind == "custom_voice" else []
        return {
            "name": "qwen3",
            "title": "Qwen3-TTS",
            "gpu": True,
            "model": model,
            "mode": kind,
            "languages": sorted(LANGUAGES),
            "capabilities": capabilities,
            "speakers": speakers,
            "license": "Apache-2.0",
            **availability("qwen_tts", str(options.get("device") or "cuda:0")),
        }

    # -- protocol ------------------------------------------------------------------------------
    def load(self) -> None:
        if self._model is not None:
            return
        torch, qwen_tts = _imports()
        require_cuda(self.name, self.device, torch)
        kwargs: dict[str, Any] = {"device_map": self.device, "dtype": getattr(torch, self.dtype)}
        attention = self._attention()
        if attention:
            kwargs["attn_implementation"] = attention
        try:
            model = qwen_tts.Qwen3TTSModel.from_pretrained(self.model_id, **kwargs)
        except OSError as e:
            raise EngineUnavailableError(
                f"the Qwen3-TTS model '{self.model_id}' cannot be loaded ({e}); run ops/install-gpu to download it "
                "and point Timbre:Engine:Qwen3:Model at its folder"
            ) from e
        self.kind = model.tts_model_type
        self._model = model
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen3")

    def unload(self) -> None:
        """Frees the GPU; the next request loads the model again."""
        model, self._model = self._model, None
        self._tuned = None
        self._prompts.clear()
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
        del model
        free_cuda_memory()

    def languages(self) -> list[str]:
        return sorted(LANGUAGES)

    def prepare_voice(self, voice_dir: str, samples: Sequence[VoiceSample]) -> dict[str, object]:
        """Builds (or loads from the voice's cache) the clone prompt; only Base models clone."""
        self.load()
        version = _version(samples)
        if version is not None:
            self._tuned_model(version[0])
            return {"engine": self.name, "mode": "fine-tuned", "version": os.path.dirname(version[0]), "speaker": version[1]}
        if self.kind != "base":
            return {"engine": self.name, "mode": self.kind, "cloned": False}
        prompt, cached, key = self._prompt(voice_dir, samples)
        return {
            "engine": self.name,
            "mode": "icl" if prompt[0].icl_mode else "x_vector_only",
            "cache_key": key,
            "cached": cached,
        }

    def stream(self, voice_dir: str, samples: Sequence[VoiceSample], request: SpeechRequest) -> Iterator[np.ndarray]:
        self.load()
        if abs(request.speed - 1.0) > 1e-6:
            raise EngineInputError("qwen3 has no speed control; send speed 1.0 (or leave it out), or use the classic engine", field="speed")
        language = language_name(request.language)
        generate = self._generator(voice_dir, samples, request, language)
        parts = fragments(request.text, max_chars=self.max_chars, sentence_pause=0.25, phrase_pause=0.0)
        if not parts:
            raise EngineInputError("text has nothing to say: give at least one word", field="text")
        joiner = Joiner(SAMPLE_RATE, crossfade_s=self.crossfade_s)
        assert self._worker is not None
        for part, audio in pipelined(parts, generate, self._worker):
            out = joiner.add(audio, part.pause_after)
            if len(out):
                yield out
        tail = joiner.finish()
        if len(tail):
            yield tail

    # -- internals -----------------------------------------------------------------------------
    def _attention(self) -> str | None:
        """flash-attn only when importable and the dtype is half precision; otherwise the default."""
        if self.attention != "auto":
            return self.attention or None
        if self.dtype in ("bfloat16", "float16") and importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        return None

    def _generator(self, voice_dir: str, samples: Sequence[VoiceSample], request: SpeechRequest, language: str):
        """The call that makes one piece, bound to this request's prompt, speaker and seed."""
        torch, _ = _imports()
        model = self._model
        seed = int(request.options.get("seed") if request.options.get("seed") is not None else
                   self.seed if self.seed is not None else random.randrange(2**31))
        instructions = (request.instructions or "").strip() or None
        version = _version(samples)

        if version is not None:
            tuned, speaker_name = self._tuned_model(version[0]), version[1]

            def call(part: Fragment) -> np.ndarray:
                return tuned.generate_custom_voice(
                    text=part.text, speaker=speaker_name, language="Auto", instruct=instructions,
                    max_new_tokens=token_cap(part.text), **self.generation)[0][0]
        elif self.kind == "base":
            if instructions:
                raise EngineInputError(
                    "instructions need a Qwen3 CustomVoice (1.7B) or VoiceDesign model; this server's qwen3 "
                    f"engine loads a Base model ({self.model_id}) that clones voices without them",
                    field="instructions",
                )
            prompt, _, _ = self._prompt(voice_dir, samples)

            def call(part: Fragment) -> np.ndarray:
                return model.generate_voice_clone(
                    text=part.text, language=language, voice_clone_prompt=prompt,
                    max_new_tokens=token_cap(part.text), **self.generation)[0][0]
        elif self.kind == "custom_voice":
            speaker = self._speaker(request)

            def call(part: Fragment) -> np.ndarray:
                return model.generate_custom_voice(
                    text=part.text, speaker=speaker, language=language, instruct=instructions,
                    max_new_tokens=token_cap(part.text), **self.generation)[0][0]
        else:
            if not instructions:
                raise EngineInputError("the qwen3 VoiceDesign model needs instructions that describe the voice to speak in", field="instructions")

            def call(part: Fragment) -> np.ndarray:
                return model.generate_voice_design(
                    text=part.text, instruct=instructions, language=language,
                    max_new_tokens=token_cap(part.text), **self.generation)[0][0]

        def seeded(part: Fragment) -> np.ndarray:
            # The same seed before every piece keeps the sampling, and so the voice, steady.
            torch.manual_seed(seed)
            try:
                return to_numpy(call(part))
            except ValueError as e:
                raise EngineInputError(f"qwen3 refused the request: {e}") from e

        return seeded

    def _tuned_model(self, folder: str) -> Any:
        """The fine-tuned checkpoint in folder, loaded once; loading another frees the one before."""
        with self._lock:
            if self._tuned is not None and self._tuned[0] == folder:
                return self._tuned[1]
            torch, qwen_tts = _imports()
            self._tuned = None
            free_cuda_memory()
            kwargs: dict[str, Any] = {"device_map": self.device, "dtype": getattr(torch, self.dtype)}
            attention = self._attention()
            if attention:
                kwargs["attn_implementation"] = attention
            try:
                model = qwen_tts.Qwen3TTSModel.from_pretrained(folder, **kwargs)
            except OSError as e:
                raise EngineInputError(f"the voice's fine-tuned version cannot be loaded ({e}); activate another version", field="voice") from e
            self._tuned = (folder, model)
            return model

    def _speaker(self, request: SpeechRequest) -> str:
        supported = self._model.get_supported_speakers() or []
        wanted = [request.options.get("speaker"), self.speaker]
        for name in wanted:
            if isinstance(name, str) and name:
                match = next((s for s in supported if s.lower() == name.lower()), None)
                if match is not None or not supported:
                    return match or name
                raise EngineInputError(f"qwen3 has no speaker '{name}'; this model has {', '.join(supported)}", field="voice")
        raise EngineInputError(
            f"name one of the model's speakers as the voice: {', '.join(supported) or 'none are listed'}",
            field="voice",
        )

    def _prompt(self, voice_dir: str, samples: Sequence[VoiceSample]) -> tuple[list[Any], bool, str]:
        """The voice's clone prompt: from memory, from the voice's cache, or built once and cached."""
        torch, qwen_tts = _imports()
        chosen = by_role(samples, "prompt")
        if not chosen:
            raise EngineInputError("this voice has no samples to clone from", field="voice")
        # One reference: the enrolment's prompt segment, else the first sample with a transcript.
        reference = next((s for s in chosen if s.transcript), chosen[0])
        key = cache.samples_key(self.name, f"{VERSION}:{self.model_id}", [reference])
        path = cache.cache_path(voice_dir, self.name, key, ".pt")
        with self._lock:
            if path in self._prompts:
                return self._prompts[path], True, key
            cached = os.path.exists(path)
            if cached:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                items = [qwen_tts.VoiceClonePromptItem(**item) for item in saved["items"]]
            else:
                transcript = (reference.transcript or "").strip() or None
                try:
                    items = self._model.create_voice_clone_prompt(
                        ref_audio=reference.path, ref_text=transcript, x_vector_only_mode=transcript is None)
                except ValueError as e:
                    raise EngineInputError(f"qwen3 cannot clone from this voice's sample: {e}", field="voice") from e
                save_atomic(torch, {"items": [asdict(item) for item in items]}, path)
            self._prompts[path] = items
            return items, cached, key


def _version(samples: Sequence[VoiceSample]) -> tuple[str, str] | None:
    """The model folder and speaker of the voice's active qwen3 version, if it has one."""
    found = versions.active(samples, "qwen3")
    if found is None:
        return None
    folder, manifest = found
    return os.path.join(folder, manifest["model_dir"]), str(manifest["speaker"])


def _imports() -> tuple[Any, Any]:
    try:
        import torch
        import qwen_tts
    except ImportError as e:
        raise EngineUnavailableError(f"qwen3 needs the qwen-tts package ({e}); install it with ops/install-gpu") from e
    return torch, qwen_tts
