"""The qwen3 and xtts adapters driven by fakes of qwen_tts, TTS and torch (tests/fakes)."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from timbre.engines import create, describe
from timbre.engines.protocol import EngineInputError, EngineUnavailableError, SpeechRequest, VoiceSample
from timbre.engines.qwen3 import language_name, token_cap
from timbre.engines.seams import Joiner, speech_bounds, trim_silence
from timbre.engines.xtts import language_code
from timbre.text import fragments

THREE = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. It is easy to tell the depth of a well."


@pytest.fixture(autouse=True)
def fakelog(fakes, monkeypatch):
    monkeypatch.delenv("TIMBRE_FAKE_CUDA", raising=False)
    return fakes


def of(calls, name):
    return [c for c in calls if c["call"] == name]


@pytest.fixture
def voice(tmp_path, fakelog):
    """A voice folder with one 4 s sample at a known pitch."""
    folder = tmp_path / "voice"
    (folder / "samples").mkdir(parents=True)
    path = folder / "samples" / "sample-1.wav"
    sf.write(path, fakelog.speechlike(4.0, 150.0, np.random.default_rng(1)), 24000)
    return str(folder), str(path)


def stream(engine, folder, samples, text=THREE, **kw):
    return [np.asarray(c) for c in engine.stream(folder, samples, SpeechRequest(text=text, **kw))]


# -- qwen3 -------------------------------------------------------------------------------------------

def test_qwen3_base_clones_in_icl_mode_with_one_cached_prompt_and_one_seed(voice, fakelog):
    folder, path = voice
    samples = [VoiceSample(path, "the words of the sample")]
    engine = create("qwen3", {"seed": 1234})
    chunks = stream(engine, folder, samples, language="en")

    load = of(fakelog.CALLS, "from_pretrained")[0]
    # No flash_attn here, so attention is left to the package's default.
    assert load == {"call": "from_pretrained", "model": "Qwen/Qwen3-TTS-12Hz-1.7B-Base", "device_map": "cuda:0",
                    "dtype": "bfloat16", "attn_implementation": None}
    prompts = of(fakelog.CALLS, "create_voice_clone_prompt")
    assert prompts == [{"call": "create_voice_clone_prompt", "ref_audio": path, "ref_text": "the words of the sample",
                        "x_vector_only_mode": False}]
    generated = of(fakelog.CALLS, "generate_voice_clone")
    expected = [f.text for f in fragments(THREE, max_chars=160, phrase_pause=0.0)]
    assert [g["text"] for g in generated] == expected
    assert all(g["icl"] and g["language"] == "English" and g["seed"] == 1234 for g in generated)
    assert [g["max_new_tokens"] for g in generated] == [token_cap(t) for t in expected]
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert os.listdir(os.path.join(folder, "cache"))[0].startswith("qwen3-")

    # A new process (a new engine) reads the prompt from the voice's cache: no second prompt.
    again = create("qwen3", {"seed": 1234})
    assert again.prepare_voice(folder, samples)["cached"] is True
    again_chunks = stream(again, folder, samples, language="en")
    assert len(of(fakelog.CALLS, "create_voice_clone_prompt")) == 1
    # Same prompt, same seed: the same audio.
    assert np.array_equal(np.concatenate(chunks), np.concatenate(again_chunks))


def test_qwen3_without_a_transcript_clones_from_the_x_vector_only(voice, fakelog):
    folder, path = voice
    engine = create("qwen3")
    assert engine.prepare_voice(folder, [VoiceSample(path)])["mode"] == "x_vector_only"
    assert of(fakelog.CALLS, "create_voice_clone_prompt")[0]["x_vector_only_mode"] is True
    stream(engine, folder, [VoiceSample(path)], text="Hello there.")
    assert of(fakelog.CALLS, "generate_voice_clone")[0]["icl"] is False


def test_qwen3_prefers_the_enrolment_prompt_segment(voice, tmp_path, fakelog):
    folder, path = voice
    prompt = str(tmp_path / "prompt.wav")
    sf.write(prompt, fakelog.speechlike(5.0, 200.0, np.random.default_rng(2)), 24000)
    samples = [VoiceSample(path, "whole sample"), VoiceSample(prompt, "the chosen segment", "prompt")]
    create("qwen3").prepare_voice(folder, samples)
    assert of(fakelog.CALLS, "create_voice_clone_prompt")[0]["ref_audio"] == prompt


def test_qwen3_streams_each_piece_before_the_later_ones_are_generated(voice, fakelog):
    folder, path = voice
    engine = create("qwen3")
    chunks = engine.stream(folder, [VoiceSample(path, "t")], SpeechRequest(text=THREE))
    first = next(chunks)
    # The first piece is out while at most the next one is being generated.
    assert len(first) > 0
    assert len(of(fakelog.CALLS, "generate_voice_clone")) <= 2
    rest = list(chunks)
    assert len(of(fakelog.CALLS, "generate_voice_clone")) == len(fragments(THREE, max_chars=160)) and rest


def test_qwen3_caps_tokens_so_a_short_input_cannot_run_away():
    assert token_cap("Hi.") <= 30
    assert token_cap("x" * 100) < token_cap("x" * 200) <= 2048
    assert token_cap("你好" * 10) > token_cap("hi" * 10)
    assert token_cap("word " * 5000) == 2048


@pytest.mark.parametrize("code, name", [("en", "English"), ("en-GB", "English"), ("zh", "Chinese"), ("German", "German"),
                                        (None, "Auto"), ("auto", "Auto"), ("pt_BR", "Portuguese")])
def test_qwen3_maps_iso_codes_to_language_names(code, name):
    assert language_name(code) == name


def test_qwen3_refuses_an_unknown_language_with_the_list(voice):
    folder, path = voice
    with pytest.raises(EngineInputError, match="does not speak 'nl'.*en"):
        stream(create("qwen3"), folder, [VoiceSample(path, "t")], language="nl")


def test_qwen3_base_refuses_instructions_and_speed(voice):
    folder, path = voice
    engine = create("qwen3")
    with pytest.raises(EngineInputError, match="instructions need a Qwen3 CustomVoice"):
        stream(engine, folder, [VoiceSample(path, "t")], instructions="whisper")
    with pytest.raises(EngineInputError, match="no speed control"):
        stream(engine, folder, [VoiceSample(path, "t")], speed=1.5)


def test_qwen3_custom_voice_speaks_a_builtin_speaker_with_instructions(fakelog):
    engine = create("qwen3", {"model": "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"})
    chunks = stream(engine, "", [], text="Good morning.", options={"speaker": "ryan"}, instructions="cheerfully")
    call = of(fakelog.CALLS, "generate_custom_voice")[0]
    assert (call["speaker"], call["instruct"], call["language"]) == ("ryan", "cheerfully", "Auto")
    assert chunks
    with pytest.raises(EngineInputError, match="no speaker 'Bob'.*vivian"):
        stream(engine, "", [], text="Hi.", options={"speaker": "Bob"})


def test_qwen3_fine_tuned_checkpoint_speaks_its_trained_speaker(tmp_path, fakelog):
    checkpoint = tmp_path / "checkpoint-epoch-2"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"tts_model_type": "custom_voice", "speakers": ["me"]}))
    info = describe("qwen3", {"model": str(checkpoint), "speaker": "me"})
    assert info["mode"] == "custom_voice" and "fine-tuned voices" in info["capabilities"] and info["speakers"] == ["me"]
    engine = create("qwen3", {"model": str(checkpoint), "speaker": "me"})
    stream(engine, "", [], text="It is me.")
    assert of(fakelog.CALLS, "generate_custom_voice")[0]["speaker"] == "me"


def test_qwen3_voice_design_needs_instructions(fakelog):
    engine = create("qwen3", {"model": "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign"})
    with pytest.raises(EngineInputError, match="needs instructions"):
        stream(engine, "", [], text="Hello.")
    stream(engine, "", [], text="Hello.", instructions="A calm, low voice")
    assert of(fakelog.CALLS, "generate_voice_design")[0]["instruct"] == "A calm, low voice"


def test_qwen3_uses_flash_attention_only_when_importable(tmp_path, monkeypatch, fakelog):
    (tmp_path / "flash_attn").mkdir()
    (tmp_path / "flash_attn" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    create("qwen3").load()
    assert of(fakelog.CALLS, "from_pretrained")[-1]["attn_implementation"] == "flash_attention_2"
    create("qwen3", {"dtype": "float32"}).load()
    assert of(fakelog.CALLS, "from_pretrained")[-1]["attn_implementation"] is None


def test_qwen3_unknown_model_is_unavailable_with_what_to_do():
    with pytest.raises(EngineUnavailableError, match="run ops/install-gpu"):
        create("qwen3", {"model": "Qwen/not-a-model"}).load()


def test_qwen3_without_cuda_is_unavailable(monkeypatch):
    monkeypatch.setenv("TIMBRE_FAKE_CUDA", "0")
    assert describe("qwen3")["available"] is False and "CUDA" in describe("qwen3")["reason"]
    with pytest.raises(EngineUnavailableError, match="CUDA"):
        create("qwen3").load()


def test_unloading_frees_the_gpu_and_the_next_load_works(voice, fakelog):
    folder, path = voice
    engine = create("qwen3")
    engine.load()
    engine.unload()
    assert of(fakelog.CALLS, "torch.cuda.empty_cache")
    stream(engine, folder, [VoiceSample(path, "t")], text="Back again.")
    assert len(of(fakelog.CALLS, "from_pretrained")) == 2


# -- xtts --------------------------------------------------------------------------------------------

@pytest.fixture
def xtts_dir(tmp_path):
    model = tmp_path / "xtts_v2"
    model.mkdir()
    for name in ("model.pth", "vocab.json", "dvae.pth", "mel_stats.pth"):
        (model / name).write_bytes(b"weights")
    (model / "config.json").write_text(json.dumps({"model": "xtts"}))
    return str(model)


def test_xtts_refuses_to_load_until_the_licence_is_accepted(xtts_dir):
    info = describe("xtts", {"model_dir": xtts_dir})
    assert info["available"] is False and "CPML" in info["reason"] and "AcceptLicense" in info["reason"]
    with pytest.raises(EngineUnavailableError, match="non-commercial"):
        create("xtts", {"model_dir": xtts_dir}).load()
    assert describe("xtts", {"model_dir": xtts_dir, "accept_license": True})["available"] is True


def test_xtts_names_its_model_before_and_after_install(xtts_dir):
    # The status page's Model column: what ops/install-gpu downloads until a folder is set, then that folder.
    assert describe("xtts", {})["model"] == "coqui/XTTS-v2"
    assert describe("xtts", {"model_dir": xtts_dir})["model"] == xtts_dir


def test_xtts_conditions_on_all_samples_once_and_streams_sentence_by_sentence(voice, xtts_dir, tmp_path, fakelog):
    folder, path = voice
    second = str(tmp_path / "second.wav")
    sf.write(second, fakelog.speechlike(3.0, 150.0, np.random.default_rng(3)), 24000)
    samples = [VoiceSample(path), VoiceSample(second)]
    engine = create("xtts", {"model_dir": xtts_dir, "accept_license": True})
    chunks = stream(engine, folder, samples, language="en-GB")
    assert os.environ["COQUI_TOS_AGREED"] == "1"
    assert of(fakelog.CALLS, "load_checkpoint")[0]["checkpoint_dir"] == xtts_dir
    latents = of(fakelog.CALLS, "get_conditioning_latents")
    assert latents == [{"call": "get_conditioning_latents", "audio_path": [path, second], "max_ref_length": 30.0}]
    spoken = of(fakelog.CALLS, "inference_stream")
    assert [s["text"] for s in spoken] == [f.text for f in fragments(THREE, max_chars=250, phrase_pause=0.0)]
    assert all(s["language"] == "en" for s in spoken)
    assert all(c.dtype == np.float32 for c in chunks)
    # The babble the model leaves after the words is cut: the stream ends within 60 ms of speech.
    audio = np.concatenate(chunks)
    _, end = speech_bounds(audio, 24000, keep_s=0.0)
    assert len(audio) - end <= int(0.05 * 24000) + 240

    again = create("xtts", {"model_dir": xtts_dir, "accept_license": True})
    assert again.prepare_voice(folder, samples)["cached"] is True
    assert len(of(fakelog.CALLS, "get_conditioning_latents")) == 1


def test_xtts_splits_text_under_the_language_limit(voice, xtts_dir, fakelog):
    folder, path = voice
    text = "这是一个很长的句子，" * 20 + "结束。"
    stream(create("xtts", {"model_dir": xtts_dir, "accept_license": True}), folder, [VoiceSample(path)], text=text, language="zh")
    spoken = of(fakelog.CALLS, "inference_stream")
    assert len(spoken) > 1 and all(len(s["text"]) <= 82 and s["language"] == "zh-cn" for s in spoken)


def test_xtts_maps_errors_to_what_the_caller_should_change(voice, xtts_dir, tmp_path):
    folder, path = voice
    engine = create("xtts", {"model_dir": xtts_dir, "accept_license": True})
    with pytest.raises(EngineInputError, match="does not speak 'sv'"):
        stream(engine, folder, [VoiceSample(path)], language="sv")
    with pytest.raises(EngineInputError, match="cannot detect the language"):
        stream(engine, folder, [VoiceSample(path)], text="Привет, как дела?")
    with pytest.raises(EngineInputError, match="does not take instructions"):
        stream(engine, folder, [VoiceSample(path)], instructions="softly")
    tiny = str(tmp_path / "tiny.wav")
    sf.write(tiny, np.zeros(2400, dtype=np.float32), 24000)
    with pytest.raises(EngineInputError, match="at least 3 s of speech"):
        engine.prepare_voice(str(tmp_path / "tinyvoice"), [VoiceSample(tiny)])


def test_xtts_loads_a_fine_tuned_checkpoint_with_the_base_vocabulary(xtts_dir, tmp_path, fakelog):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best_model.pth").write_bytes(b"tuned")
    options = {"model_dir": xtts_dir, "checkpoint": str(run / "best_model.pth"), "accept_license": True}
    create("xtts", options).load()
    call = of(fakelog.CALLS, "load_checkpoint")[0]
    assert call["checkpoint_path"] == str(run / "best_model.pth") and call["vocab_path"] == os.path.join(xtts_dir, "vocab.json")
    assert "fine-tuned voices" in describe("xtts", options)["capabilities"]


@pytest.mark.parametrize("code, expected", [("en", "en"), ("EN-us", "en"), ("zh", "zh-cn"), ("zh-CN", "zh-cn"), ("pt-BR", "pt"), ("ja", "ja")])
def test_xtts_maps_iso_codes(code, expected):
    assert language_code(code, "text") == expected


# -- seams -------------------------------------------------------------------------------------------

def _tone(seconds, f0, phase):
    t = np.arange(int(seconds * 24000)) / 24000
    return (0.5 * np.sin(2 * np.pi * f0 * t + phase)).astype(np.float32)


def test_pieces_of_one_sentence_are_crossfaded_without_a_click():
    joiner = Joiner(24000, crossfade_s=0.025)
    a, b = _tone(0.5, 200, 0.0), _tone(0.5, 200, np.pi)  # butted together these jump by up to 1.0
    out = np.concatenate([joiner.add(a, 0.0), joiner.add(b, 0.25), joiner.finish()])
    seam = slice(len(a) - 900, len(a) + 300)
    assert np.max(np.abs(np.diff(out[seam]))) < 0.1
    # The crossfade overlaps 25 ms; the sentence's pause follows.
    assert len(out) == len(a) + len(b) - 600 + 6000


def test_sentences_are_separated_by_a_faded_pause_and_silent_edges_are_trimmed():
    joiner = Joiner(24000)
    padded = np.concatenate([np.zeros(4800, np.float32), _tone(0.4, 150, 0.3), np.zeros(4800, np.float32)])
    first = joiner.add(padded, 0.3)
    assert abs(first[0]) < 1e-3  # faded in
    speech = trim_silence(padded, 24000)
    assert len(first) == len(speech) + 7200
    assert np.all(first[len(speech):] == 0)
    assert abs(first[len(speech) - 1]) < 0.01  # faded out before the pause


def test_the_last_piece_comes_out_whole_and_faded_with_no_pause():
    joiner = Joiner(24000, crossfade_s=0.025)
    a, b = _tone(0.5, 200, 0.0), _tone(0.5, 200, np.pi)
    out = np.concatenate([joiner.add(a, 0.0), joiner.add(b, 0.25, last=True)])
    assert len(out) == len(a) + len(b) - 600  # the crossfade, and no pause at the end
    assert abs(out[-1]) < 0.01  # faded out
    assert len(joiner.finish()) == 0  # nothing was held back
