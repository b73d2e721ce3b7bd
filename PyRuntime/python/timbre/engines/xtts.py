"""The xtts engine: XTTS-v2 (package `coqui-tts`, imported as `TTS`) on the GPU.

Written against the low-level API recorded in shared/ENGINES.md (XttsConfig, Xtts.init_from_config,
load_checkpoint, get_conditioning_latents, inference_stream); the tests drive it with a fake `TTS` and
`torch`. The low-level loader serves the base model and fine-tuned checkpoints alike.

The weights are under the Coqui Public Model License (non-commercial use only): the engine refuses to
load until Timbre:Engine:Xtts:AcceptLicense is true, which also sets COQUI_TOS_AGREED for the package.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Iterator, Sequence

import numpy as np

from .. import cache
from . import versions
from ..audio import fade
from ..text import fragments
from ..textprep import is_english
from .gpu import availability, free_cuda_memory, require_cuda, save_atomic, to_numpy
from .protocol import EngineInputError, EngineUnavailableError, SpeechRequest, VoiceSample, by_role
from .seams import frame_energy, speech_bounds

VERSION = "1"
SAMPLE_RATE = 24000
TAIL_HOLD = SAMPLE_RATE // 2
LICENSE = "CPML (Coqui Public Model License): non-commercial use only"

# Characters per piece before quality drops, by language (from the package's tokenizer limits).
CHAR_LIMITS = {
    "en": 250, "de": 253, "fr": 273, "es": 239, "it": 213, "pt": 203, "pl": 224, "zh-cn": 82,
    "ar": 166, "cs": 186, "ru": 182, "nl": 251, "tr": 226, "ja": 71, "hu": 224, "ko": 95, "hi": 150,
}
_ALIASES = {"zh": "zh-cn", "zh-hans": "zh-cn", "zh-cn": "zh-cn", "pt-br": "pt", "pt-pt": "pt"}


def language_code(code: str | None, text: str) -> str:
    """ISO codes ('en', 'en-GB', 'zh', 'pt-BR') → XTTS's; none given → English for English text."""
    if code is None or code.strip().lower() in ("", "auto"):
        if is_english(None, text):
            return "en"
        raise EngineInputError("xtts cannot detect the language: give one of " + ", ".join(sorted(CHAR_LIMITS)), field="language")
    key = code.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in CHAR_LIMITS:
        key = _ALIASES.get(key.split("-")[0], key.split("-")[0])
    if key not in CHAR_LIMITS:
        raise EngineInputError(f"xtts does not speak '{code}'; use one of {', '.join(sorted(CHAR_LIMITS))}", field="language")
    return key


class XttsEngine:
    name = "xtts"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model_dir: str = "",
        checkpoint: str | None = None,
        vocab: str | None = None,
        device: str = "cuda",
        accept_license: bool = False,
        max_reference_seconds: float = 30.0,
        sentence_pause_ms: float = 250.0,
        generation: dict[str, Any] | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.checkpoint = checkpoint or None
        self.vocab = vocab or None
        self.device = device
        self.accept_license = accept_license
        self.max_reference_seconds = max_reference_seconds
        self.sentence_pause_s = sentence_pause_ms / 1000.0
        self.generation = {"temperature": 0.75, "repetition_penalty": 10.0, "top_k": 50, "top_p": 0.85, **(generation or {})}
        self._model: Any = None
        self._latents: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        # A voice's fine-tuned version in use: its folder and its model (one at a time on the GPU).
        self._tuned: tuple[str, Any] | None = None

    # -- registry ------------------------------------------------------------------------------
    @classmethod
    def describe(cls, options: dict[str, Any]) -> dict[str, Any]:
        status = availability("TTS", str(options.get("device") or "cuda"))
        if status["available"] and not options.get("accept_license"):
            status = {"available": False, "reason": f"the XTTS-v2 weights are under the {LICENSE}; set "
                      "Timbre:Engine:Xtts:AcceptLicense to true to accept it"}
        elif status["available"] and not os.path.isfile(os.path.join(str(options.get("model_dir") or ""), "config.json")):
            status = {"available": False, "reason": "Timbre:Engine:Xtts:ModelDir has no config.json: run ops/install-gpu"}
        return {
            "name": "xtts",
            "title": "XTTS-v2",
            "gpu": True,
            # Before ops/install-gpu has set a folder, the model it downloads.
            "model": options.get("checkpoint") or options.get("model_dir") or "coqui/XTTS-v2",
            "mode": "fine_tuned" if options.get("checkpoint") else "base",
            "languages": sorted(CHAR_LIMITS),
            "capabilities": ["clone"] + (["fine-tuned voices"] if options.get("checkpoint") else []),
            "speakers": [],
            "license": LICENSE,
            **status,
        }

    # -- protocol ------------------------------------------------------------------------------
    def load(self) -> None:
        if self._model is not None:
            return
        if not self.accept_license:
            raise EngineUnavailableError(
                f"the XTTS-v2 weights are under the {LICENSE}; set Timbre:Engine:Xtts:AcceptLicense to true to accept it")
        os.environ["COQUI_TOS_AGREED"] = "1"
        torch, XttsConfig, Xtts = _imports()
        require_cuda(self.name, self.device, torch)
        config_path = os.path.join(self.model_dir, "config.json")
        if not os.path.isfile(config_path):
            raise EngineUnavailableError(
                f"no XTTS-v2 model at '{self.model_dir}' (config.json missing): run ops/install-gpu and set Timbre:Engine:Xtts:ModelDir")
        config = XttsConfig()
        config.load_json(config_path)
        model = Xtts.init_from_config(config)
        if self.checkpoint:
            # A fine-tuned run: its best_model.pth with the base model's vocabulary and config.
            model.load_checkpoint(config, checkpoint_path=self.checkpoint,
                                  vocab_path=self.vocab or os.path.join(self.model_dir, "vocab.json"),
                                  eval=True, use_deepspeed=False)
        else:
            model.load_checkpoint(config, checkpoint_dir=self.model_dir, eval=True, use_deepspeed=False)
        if self.device.startswith("cuda"):
            model.cuda()
        self._model = model

    def unload(self) -> None:
        model, self._model = self._model, None
        self._tuned = None
        self._latents.clear()
        del model
        free_cuda_memory()

    def languages(self) -> list[str]:
        return sorted(CHAR_LIMITS)

    def prepare_voice(self, voice_dir: str, samples: Sequence[VoiceSample]) -> dict[str, object]:
        self.load()
        model, version = self._model_for(samples)
        _, cached, key = self._conditioning(voice_dir, samples, model, version)
        summary: dict[str, object] = {"engine": self.name, "cache_key": key, "cached": cached}
        if version:
            summary["version"] = version
        return summary

    def stream(self, voice_dir: str, samples: Sequence[VoiceSample], request: SpeechRequest) -> Iterator[np.ndarray]:
        self.load()
        if request.instructions and request.instructions.strip():
            raise EngineInputError("xtts does not take instructions; leave them out or use a qwen3 CustomVoice or VoiceDesign model", field="instructions")
        if not 0.5 <= request.speed <= 2.0:
            raise EngineInputError(f"xtts speaks at speed 0.5 to 2.0, got {request.speed}", field="speed")
        language = language_code(request.language, request.text)
        parts = fragments(request.text, max_chars=CHAR_LIMITS[language], sentence_pause=self.sentence_pause_s, phrase_pause=0.0)
        if not parts:
            raise EngineInputError("text has nothing to say: give at least one word", field="text")
        model, version = self._model_for(samples)
        (gpt_cond_latent, speaker_embedding), _, _ = self._conditioning(voice_dir, samples, model, version)
        for index, part in enumerate(parts):
            chunks = model.inference_stream(
                part.text, language, gpt_cond_latent, speaker_embedding, speed=request.speed,
                enable_text_splitting=False, **self.generation)
            # The last half second of each sentence is held back, so the end can be cut where the
            # speech ends (XTTS trails off into babble after the words) and followed by the pause;
            # each sentence's first chunk loses its leading silence.
            pending = np.zeros(0, dtype=np.float32)
            peak = 0.0
            first = True
            for chunk in chunks:
                audio = to_numpy(chunk)
                if first:
                    audio, first = _trim_start(audio), False
                energy = frame_energy(audio, SAMPLE_RATE)
                peak = max(peak, float(energy.max()) if len(energy) else 0.0)
                pending = np.concatenate([pending, audio])
                if len(pending) > TAIL_HOLD:
                    yield pending[:-TAIL_HOLD]
                    pending = pending[-TAIL_HOLD:]
            last = index == len(parts) - 1
            _, end = speech_bounds(pending, SAMPLE_RATE, keep_s=0.05, peak=peak)
            pause = np.zeros(0 if last else int(part.pause_after * SAMPLE_RATE), dtype=np.float32)
            tail = np.concatenate([fade(pending[:end], SAMPLE_RATE, 0.01, head=False), pause])
            if len(tail):
                yield tail

    # -- internals -----------------------------------------------------------------------------
    def _model_for(self, samples: Sequence[VoiceSample]) -> tuple[Any, str | None]:
        """The base model, or the voice's active xtts version (best_model.pth with the base vocab and
        config, as coqui's recipe leaves it), loaded once; loading another frees the one before."""
        version = _version(samples)
        if version is None:
            return self._model, None
        with self._lock:
            if self._tuned is not None and self._tuned[0] == version["folder"]:
                return self._tuned[1], version["folder"]
            self._tuned = None
            free_cuda_memory()
            torch, XttsConfig, Xtts = _imports()
            config = XttsConfig()
            config.load_json(version["config"])
            model = Xtts.init_from_config(config)
            try:
                model.load_checkpoint(config, checkpoint_path=version["checkpoint"], vocab_path=version["vocab"], eval=True, use_deepspeed=False)
            except (OSError, RuntimeError) as e:
                raise EngineInputError(f"the voice's fine-tuned version cannot be loaded ({e}); activate another version", field="voice") from e
            if self.device.startswith("cuda"):
                model.cuda()
            self._tuned = (version["folder"], model)
            return model, version["folder"]

    def _conditioning(self, voice_dir: str, samples: Sequence[VoiceSample], model: Any, version: str | None) -> tuple[tuple[Any, Any], bool, str]:
        """The voice's GPT conditioning latent and speaker embedding, from all of its reference audio,
        computed once (per model: fine-tuning changes the conditioning encoder) and cached in the voice's folder."""
        torch, _, _ = _imports()
        chosen = by_role(samples, "reference")
        if not chosen:
            raise EngineInputError("this voice has no samples to clone from", field="voice")
        key = cache.samples_key(self.name, VERSION if version is None else f"{VERSION}:{version}", chosen)
        path = cache.cache_path(voice_dir, self.name, key, ".pt")
        with self._lock:
            if path in self._latents:
                return self._latents[path], True, key
            cached = os.path.exists(path)
            if cached:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                latents = (saved["gpt_cond_latent"], saved["speaker_embedding"])
            else:
                try:
                    latents = model.get_conditioning_latents(
                        audio_path=[s.path for s in chosen], max_ref_length=self.max_reference_seconds)
                except RuntimeError as e:
                    raise EngineInputError(f"xtts cannot use this voice's samples ({e}); enrol at least 3 s of speech", field="voice") from e
                save_atomic(torch, {"gpt_cond_latent": latents[0], "speaker_embedding": latents[1]}, path)
            if self.device.startswith("cuda"):
                latents = (latents[0].to(self.device), latents[1].to(self.device))
            self._latents[path] = latents
            return latents, cached, key


def _version(samples: Sequence[VoiceSample]) -> dict[str, str] | None:
    """The files of the voice's active xtts version, if it has one."""
    found = versions.active(samples, "xtts")
    if found is None:
        return None
    folder, manifest = found
    model = os.path.join(folder, manifest["model_dir"])
    return {"folder": folder, "checkpoint": os.path.join(model, manifest["checkpoint"]),
            "vocab": os.path.join(model, manifest["vocab"]), "config": os.path.join(model, manifest["config"])}


def _trim_start(audio: np.ndarray) -> np.ndarray:
    """Leading silence off a sentence's first chunk: it delays the first sound and lengthens pauses."""
    start, end = speech_bounds(audio, SAMPLE_RATE, keep_s=0.03)
    return audio[start:] if end > start else audio


def _imports() -> tuple[Any, Any, Any]:
    try:
        import torch
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts
    except ImportError as e:
        raise EngineUnavailableError(f"xtts needs the coqui-tts package ({e}); install it with ops/install-gpu") from e
    return torch, XttsConfig, Xtts
