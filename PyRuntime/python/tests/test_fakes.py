"""The fakes keep the upstream packages' behaviour (shared/ENGINES.md), errors included; if they did
not, the adapter tests would prove nothing."""
import json

import numpy as np
import pytest
import soundfile as sf

from timbre.engines import create
from timbre.engines.protocol import EngineInputError, SpeechRequest, VoiceSample


@pytest.fixture
def wav(tmp_path, fakes):
    def make(seconds):
        path = tmp_path / f"ref-{seconds}.wav"
        sf.write(path, fakes.speechlike(seconds, 140.0, np.random.default_rng(0)) if seconds > 0.3 else np.full(int(seconds * 24000), 0.1, np.float32), 24000)
        return str(path)

    return make


def test_qwen_tts_returns_a_list_of_float32_arrays_at_24_khz(fakes, wav):
    import qwen_tts

    model = qwen_tts.Qwen3TTSModel.from_pretrained("Qwen/Qwen3-TTS-12Hz-0.6B-Base")
    wavs, sr = model.generate_voice_clone(text=["One.", "Two words."], language="english", ref_audio=wav(3), ref_text="hello")
    assert sr == 24000 and isinstance(wavs, list) and len(wavs) == 2
    assert all(w.dtype == np.float32 and w.ndim == 1 for w in wavs)


def test_qwen_tts_raises_as_upstream_does(fakes, wav):
    import qwen_tts

    base = qwen_tts.Qwen3TTSModel.from_pretrained("Qwen/Qwen3-TTS-12Hz-1.7B-Base")
    with pytest.raises(ValueError, match="ref_text"):
        base.generate_voice_clone(text="Hi.", ref_audio=wav(3))
    with pytest.raises(ValueError, match="bare numpy array"):
        base.create_voice_clone_prompt(ref_audio=np.zeros(24000, np.float32), x_vector_only_mode=True)
    with pytest.raises(ValueError, match="Unsupported languages"):
        base.generate_voice_clone(text="Hi.", language="Klingon", ref_audio=wav(3), x_vector_only_mode=True)
    with pytest.raises(ValueError, match="generate_custom_voice"):
        base.generate_custom_voice(text="Hi.", speaker="ryan")
    with pytest.raises(OSError, match="not a valid model identifier"):
        qwen_tts.Qwen3TTSModel.from_pretrained("Qwen/Qwen3-TTS-12Hz-0.6B-VoiceDesign")  # there is no 0.6B VoiceDesign
    # A (array, rate) tuple is accepted; the 0.6B CustomVoice drops instructions silently.
    base.create_voice_clone_prompt(ref_audio=(np.zeros(24000, np.float32), 24000), x_vector_only_mode=True)
    small = qwen_tts.Qwen3TTSModel.from_pretrained("Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice")
    small.generate_custom_voice(text="Hi.", speaker="Ryan", instruct="loudly")
    assert fakes.CALLS[-1]["instruct"] is None


def test_prompt_items_survive_a_weights_only_round_trip_and_a_dict_loses_icl(fakes, wav, tmp_path):
    from dataclasses import asdict

    import qwen_tts
    import torch

    model = qwen_tts.Qwen3TTSModel.from_pretrained("Qwen/Qwen3-TTS-12Hz-1.7B-Base")
    items = model.create_voice_clone_prompt(ref_audio=wav(3), ref_text="hello there")
    torch.save({"items": [asdict(i) for i in items]}, tmp_path / "p.pt")
    saved = torch.load(tmp_path / "p.pt", map_location="cpu", weights_only=True)
    rebuilt = [qwen_tts.VoiceClonePromptItem(**i) for i in saved["items"]]
    model.generate_voice_clone(text="Hi.", voice_clone_prompt=rebuilt)
    assert fakes.CALLS[-1]["icl"] is True
    model.generate_voice_clone(text="Hi.", voice_clone_prompt=saved)
    assert fakes.CALLS[-1]["icl"] is False
    # weights_only refuses anything but tensors and plain containers.
    torch.save({"items": items}, tmp_path / "objects.pt")
    import pickle

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(tmp_path / "objects.pt", weights_only=True)


def test_xtts_raises_as_upstream_does(fakes, wav, tmp_path):
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    (tmp_path / "config.json").write_text(json.dumps({}))
    config = XttsConfig()
    config.load_json(str(tmp_path / "config.json"))
    model = Xtts.init_from_config(config)
    with pytest.raises(FileNotFoundError):
        model.load_checkpoint(config, checkpoint_dir=str(tmp_path), eval=True)
    with pytest.raises(RuntimeError, match="Kernel size"):
        model.get_conditioning_latents(audio_path=[wav(0.2)])
    latent, speaker = model.get_conditioning_latents(audio_path=[wav(3)])
    with pytest.raises(ValueError, match="language"):
        next(model.inference_stream("Hello.", None, latent, speaker))
    with pytest.raises(AssertionError, match="400 tokens"):
        next(model.inference_stream("word " * 300, "en", latent, speaker))
    chunks = list(model.inference_stream("Hello there, friend.", "en", latent, speaker))
    assert all(hasattr(c, "detach") and c.cpu().numpy().dtype == np.float32 for c in chunks)
    model.cuda()
    with pytest.raises(RuntimeError, match="same device"):
        next(model.inference_stream("Hello.", "en", latent, speaker))


def test_a_package_value_error_reaches_the_caller_as_bad_input(fakes, wav, tmp_path, monkeypatch):
    import qwen_tts

    def refuse(self, *args, **kwargs):
        raise ValueError("Unsupported languages: ['auto-ish']")

    monkeypatch.setattr(qwen_tts.Qwen3TTSModel, "generate_voice_clone", refuse)
    engine = create("qwen3")
    with pytest.raises(EngineInputError, match="qwen3 refused the request: Unsupported languages"):
        list(engine.stream(str(tmp_path), [VoiceSample(wav(3), "hello")], SpeechRequest(text="Hello.")))
