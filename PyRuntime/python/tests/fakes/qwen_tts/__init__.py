"""Fake qwen_tts 0.1.1: Qwen3TTSModel and VoiceClonePromptItem as shared/ENGINES.md records them."""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np
import soundfile as sf

import fakelog
import torch

SAMPLE_RATE = 24000
SAMPLES_PER_FRAME = 1920
LANGUAGES = ["chinese", "english", "japanese", "korean", "german", "french", "russian", "portuguese", "spanish", "italian"]
SPEAKERS = ["vivian", "serena", "uncle_fu", "dylan", "eric", "ryan", "aiden", "ono_anna", "sohee"]
_KNOWN = re.compile(r"^Qwen/Qwen3-TTS-12Hz-(1\.7B|0\.6B)-(Base|CustomVoice|VoiceDesign)$")
_KINDS = {"Base": "base", "CustomVoice": "custom_voice", "VoiceDesign": "voice_design"}


@dataclass
class VoiceClonePromptItem:
    ref_code: Optional[torch.Tensor]
    ref_spk_embedding: torch.Tensor
    x_vector_only_mode: bool
    icl_mode: bool
    ref_text: Optional[str] = None


def _load_audio(ref_audio) -> tuple[np.ndarray, int]:
    if isinstance(ref_audio, np.ndarray):
        raise ValueError("ref_audio as a bare numpy array is ambiguous: pass (audio, sample_rate), a path, a URL or base64")
    if isinstance(ref_audio, tuple):
        audio, sr = ref_audio
        return np.asarray(audio, dtype=np.float32), int(sr)
    if isinstance(ref_audio, str):
        audio, sr = sf.read(ref_audio, dtype="float32", always_2d=True)
        return audio.mean(axis=1), sr
    raise ValueError(f"unsupported ref_audio type: {type(ref_audio).__name__}")


def _pitch(audio: np.ndarray, sr: int) -> float:
    """A rough pitch from zero crossings: the 'speaker embedding' the fake clones."""
    crossings = np.count_nonzero(np.diff(np.signbit(audio[np.abs(audio) > 0.01])))
    seconds = max(np.count_nonzero(np.abs(audio) > 0.01) / sr, 1e-3)
    return float(np.clip(crossings / 2 / seconds, 70, 400))


class Qwen3TTSModel:
    def __init__(self, name: str, kind: str, speakers: list[str] | None, small: bool) -> None:
        self.name = name
        self.tts_model_type = kind
        self._speakers = speakers
        self._small = small

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, **kwargs: Any) -> "Qwen3TTSModel":
        name = pretrained_model_name_or_path
        config = os.path.join(name, "config.json")
        if os.path.isdir(name):
            if not os.path.isfile(config):
                raise OSError(f"{name} does not appear to have a file named config.json.")
            with open(config, encoding="utf-8") as f:
                data = json.load(f)
            kind = data["tts_model_type"]
            # A fine-tuned checkpoint (sft_12hz.py) registers its speaker in talker_config.spk_id.
            named = data.get("speakers") or list(data.get("talker_config", {}).get("spk_id", {}))
            speakers = [s.lower() for s in named] or (SPEAKERS if kind == "custom_voice" else None)
            small = False
        else:
            m = _KNOWN.match(name)
            if m is None or (m.group(1), m.group(2)) == ("0.6B", "VoiceDesign"):  # no 0.6B VoiceDesign exists
                raise OSError(f"{name} is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'")
            kind = _KINDS[m.group(2)]
            speakers = SPEAKERS if kind == "custom_voice" else None
            small = m.group(1) == "0.6B"
        dtype = kwargs.get("dtype")
        fakelog.record("from_pretrained", model=name, device_map=kwargs.get("device_map"),
                       dtype=getattr(dtype, "name", dtype), attn_implementation=kwargs.get("attn_implementation"))
        return cls(name, kind, speakers, small)

    def get_supported_speakers(self) -> Optional[List[str]]:
        return list(self._speakers) if self._speakers else None

    def get_supported_languages(self) -> Optional[List[str]]:
        return list(LANGUAGES)

    # -- helpers ---------------------------------------------------------------------------------
    def _require(self, kind: str, method: str) -> None:
        if self.tts_model_type != kind:
            raise ValueError(f"{method} is not supported by a {self.tts_model_type} model (tts_model_type must be {kind})")

    @staticmethod
    def _language(language: Optional[str]) -> None:
        if language is None or language.lower() == "auto":
            return
        if language.lower() not in LANGUAGES:
            raise ValueError(f"Unsupported languages: ['{language}']. Supported: {LANGUAGES}")

    @staticmethod
    def _speech(text: str, f0: float, max_new_tokens: Optional[int]) -> np.ndarray:
        frames = math.ceil((0.2 + 0.065 * len(text)) * 12.5)
        if max_new_tokens is not None:
            frames = min(frames, int(max_new_tokens))
        return fakelog.speechlike(frames * SAMPLES_PER_FRAME / SAMPLE_RATE, f0, torch.random_generator())

    def _batch(self, text, f0: float, gen: dict) -> tuple[list[np.ndarray], int]:
        texts = text if isinstance(text, list) else [text]
        # A real generation keeps the GPU busy for seconds while Python waits with the GIL released
        # (torch drops it in its kernels); $TIMBRE_FAKE_GENERATION_SECONDS makes the fake take that long.
        wait = float(os.environ.get("TIMBRE_FAKE_GENERATION_SECONDS", "0"))
        if wait > 0:
            time.sleep(wait)
        return [self._speech(t, f0, gen.get("max_new_tokens")) for t in texts], SAMPLE_RATE

    # -- the API ---------------------------------------------------------------------------------
    def create_voice_clone_prompt(self, ref_audio, ref_text: Optional[str] = None, x_vector_only_mode: bool = False) -> List[VoiceClonePromptItem]:
        self._require("base", "create_voice_clone_prompt")
        if not x_vector_only_mode and not ref_text:
            raise ValueError("ref_text is required when x_vector_only_mode=False (ICL mode)")
        audio, sr = _load_audio(ref_audio)
        embedding = torch.tensor(np.full(16, _pitch(audio, sr), dtype=np.float32))
        frames = max(1, int(len(audio) / sr * 12.5))
        code = None if x_vector_only_mode else torch.tensor(np.zeros((frames, 16), dtype=np.int64))
        fakelog.record("create_voice_clone_prompt", ref_audio=ref_audio if isinstance(ref_audio, str) else "array",
                       ref_text=ref_text, x_vector_only_mode=x_vector_only_mode)
        return [VoiceClonePromptItem(code, embedding, x_vector_only_mode, not x_vector_only_mode, ref_text)]

    def generate_voice_clone(self, text, language=None, ref_audio=None, ref_text=None, x_vector_only_mode=False,
                             voice_clone_prompt=None, non_streaming_mode=False, **gen):
        self._require("base", "generate_voice_clone")
        self._language(language)
        if voice_clone_prompt is None:
            if ref_audio is None:
                raise ValueError("either voice_clone_prompt or ref_audio must be given")
            voice_clone_prompt = self.create_voice_clone_prompt(ref_audio, ref_text, x_vector_only_mode)
        if isinstance(voice_clone_prompt, dict):
            # Upstream reads a dict as x-vector-only (inferred): ICL is silently lost.
            items, icl = voice_clone_prompt.get("items", []), False
            f0 = float(items[0]["ref_spk_embedding"].numpy()[0]) if items else 150.0
        else:
            items = voice_clone_prompt
            icl = all(i.icl_mode for i in items)
            f0 = float(items[0].ref_spk_embedding.cpu().numpy()[0])
        fakelog.record("generate_voice_clone", text=text, language=language, icl=icl, seed=torch.initial_seed(),
                       max_new_tokens=gen.get("max_new_tokens"), thread=__import__("threading").current_thread().name)
        return self._batch(text, f0, gen)

    def generate_custom_voice(self, text, speaker, language=None, instruct=None, non_streaming_mode=True, **gen):
        self._require("custom_voice", "generate_custom_voice")
        self._language(language)
        if not self._speakers or str(speaker).lower() not in self._speakers:
            raise ValueError(f"Unsupported speakers: ['{speaker}']. Supported: {self._speakers}")
        if self._small:
            instruct = None  # the 0.6B model drops instructions silently
        fakelog.record("generate_custom_voice", text=text, speaker=speaker, language=language, instruct=instruct,
                       seed=torch.initial_seed(), max_new_tokens=gen.get("max_new_tokens"))
        return self._batch(text, 120.0 + 20 * self._speakers.index(str(speaker).lower()), gen)

    def generate_voice_design(self, text, instruct, language=None, non_streaming_mode=True, **gen):
        self._require("voice_design", "generate_voice_design")
        self._language(language)
        fakelog.record("generate_voice_design", text=text, instruct=instruct, language=language,
                       seed=torch.initial_seed(), max_new_tokens=gen.get("max_new_tokens"))
        return self._batch(text, 180.0, gen)
