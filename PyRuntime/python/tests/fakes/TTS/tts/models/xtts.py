"""Fake Xtts: the low-level loader, conditioning latents and inference_stream, as ENGINES.md records them."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

import fakelog
import torch

SAMPLE_RATE = 24000
CHUNK = 22320  # about 0.93 s, as inference_stream yields with stream_chunk_size=20


class Xtts:
    def __init__(self, config) -> None:
        self.config = config
        self.device = "cpu"
        self.loaded = False

    @staticmethod
    def init_from_config(config, **kwargs) -> "Xtts":
        return Xtts(config)

    def load_checkpoint(self, config, checkpoint_dir=None, checkpoint_path=None, vocab_path=None, eval=True,
                        strict=True, use_deepspeed=False, speaker_file_path=None) -> None:
        model_path = checkpoint_path or os.path.join(checkpoint_dir, "model.pth")
        vocab = vocab_path or os.path.join(checkpoint_dir, "vocab.json")
        for path in (model_path, vocab):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
        fakelog.record("load_checkpoint", checkpoint_dir=checkpoint_dir, checkpoint_path=checkpoint_path,
                       vocab_path=vocab_path, eval=eval, use_deepspeed=use_deepspeed)
        self.loaded = True

    def cuda(self) -> "Xtts":
        self.device = "cuda:0"
        return self

    def to(self, device) -> "Xtts":
        self.device = str(device)
        return self

    def get_conditioning_latents(self, audio_path, max_ref_length=30, gpt_cond_len=6, gpt_cond_chunk_len=6,
                                 librosa_trim_db=None, sound_norm_refs=False, load_sr=22050):
        paths = audio_path if isinstance(audio_path, list) else [audio_path]
        audio = []
        for p in paths:
            x, sr = sf.read(p, dtype="float32", always_2d=True)
            audio.append(x.mean(axis=1)[: int(max_ref_length * sr)])
        joined = np.concatenate(audio)
        if len(joined) < 0.33 * sr:
            raise RuntimeError("Calculated padded input size per channel: (2). Kernel size: (3). Kernel size can't be greater than actual input size")
        level = float(np.sqrt(np.mean(joined**2)))
        fakelog.record("get_conditioning_latents", audio_path=paths, max_ref_length=max_ref_length)
        return (torch.tensor(np.full((1, 32, 1024), level, dtype=np.float32)),
                torch.tensor(np.full((1, 512, 1), 100.0 + 1000 * level, dtype=np.float32)))

    def _check(self, text: str, language) -> None:
        if language is None:
            raise ValueError("language is required: XTTS does not detect it")
        if language not in self.config.languages:
            raise ValueError(f"Language {language} is not supported. Supported languages are {self.config.languages}")
        if len(text.split()) * 2 > 400:
            raise AssertionError(" ❗ XTTS can only generate text with a maximum of 400 tokens.")

    def inference_stream(self, text, language, gpt_cond_latent, speaker_embedding, stream_chunk_size=20,
                         overlap_wav_len=1024, temperature=0.75, length_penalty=1.0, repetition_penalty=10.0,
                         top_k=50, top_p=0.85, do_sample=True, speed=1.0, enable_text_splitting=False, **kwargs):
        self._check(text, language)
        def same(a: str, b: str) -> bool:  # "cuda" is "cuda:0", as in torch
            norm = lambda d: d + ":0" if d == "cuda" else d
            return norm(a) == norm(b)

        if not same(gpt_cond_latent.device, self.device) or not same(speaker_embedding.device, self.device):
            raise RuntimeError("Expected all tensors to be on the same device")
        fakelog.record("inference_stream", text=text, language=language, speed=speed, temperature=temperature)
        f0 = float(speaker_embedding.cpu().numpy().ravel()[0])
        speech = fakelog.speechlike((0.2 + 0.065 * len(text)) / speed, f0, torch.random_generator())
        # The model trails off into babble after short texts.
        babble = 0.05 * torch.random_generator().standard_normal(int(0.3 * SAMPLE_RATE)).astype(np.float32)
        wav = np.concatenate([speech, babble * 0.02])
        for start in range(0, len(wav), CHUNK):
            yield torch.Tensor(wav[start:start + CHUNK], self.device)

    def inference(self, text, language, gpt_cond_latent, speaker_embedding, **kwargs):
        chunks = [c.cpu().numpy() for c in self.inference_stream(text, language, gpt_cond_latent, speaker_embedding, **kwargs)]
        return {"wav": np.concatenate(chunks)}
