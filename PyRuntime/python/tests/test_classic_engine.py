import os

import numpy as np
import pytest

from timbre.engines import EngineInputError, SpeechRequest, VoiceSample, create
from timbre.engines.classic import analysis


def test_output_median_pitch_follows_the_reference(engine, espeak_voice, tmp_path):
    ref = espeak_voice("en-us+f3")
    samples = [VoiceSample(ref)]
    out = np.concatenate(list(engine.stream(str(tmp_path), samples, SpeechRequest("Rice is often served in round bowls. The juice of lemons makes fine punch."))))
    import soundfile as sf

    ref_audio, sr = sf.read(ref)
    ref_f0 = analysis.pitch_stats(analysis.yin_pitch(ref_audio, sr)).median_hz
    out_f0 = analysis.pitch_stats(analysis.yin_pitch(out, engine.sample_rate)).median_hz
    assert out.dtype == np.float32
    assert out_f0 == pytest.approx(ref_f0, rel=0.05)
    # Plain flite rms speaks near 100 Hz: the match moved it a long way.
    assert out_f0 > 180


def test_stream_yields_a_sentence_while_synthesising_at_most_one_ahead(engine, espeak_voice, tmp_path):
    samples = [VoiceSample(espeak_voice())]
    calls = []
    original = engine._flite.synthesize

    def counting(text, **kw):
        calls.append(text)
        return original(text, **kw)

    engine.prepare_voice(str(tmp_path), samples)
    engine._flite.synthesize = counting
    try:
        gen = engine.stream(str(tmp_path), samples, SpeechRequest("First sentence here. Second one. Third one."))
        first = next(gen)
        # The next sentence may already be under way on the flite thread; the one after is not.
        assert calls[0] == "First sentence here." and "Third one." not in calls
        rest = list(gen)
        assert len(rest) == 2 and calls == ["First sentence here.", "Second one.", "Third one."]
        assert len(first) > 0.5 * engine.sample_rate

        calls.clear()
        closed = engine.stream(str(tmp_path), samples, SpeechRequest("One. Two. Three. Four. Five."))
        next(closed)
        closed.close()
        engine._synth.submit(float("inf"), lambda: None).result()  # whatever was queued has run or was cancelled
        assert len(calls) <= 2, f"a closed stream kept synthesising: {calls}"
    finally:
        engine._flite.synthesize = original


def _quiet_runs(x, sample_rate, below_db=-40.0):
    """(start, length) in seconds of each run of 10 ms frames quieter than below_db under the loudest."""
    frame = sample_rate // 100
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    quiet = np.concatenate([[False], rms < rms.max() * 10 ** (below_db / 20), [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    return [(a / 100, (b - a) / 100) for a, b in zip(edges[::2], edges[1::2])]


def test_speech_starts_at_once_and_pauses_only_between_sentences(engine, espeak_voice, tmp_path):
    # flite pads every fragment with about 150 ms of silence at each end. Left in, the first chunk
    # opened with it and the opening phrase stopped for a third of a second mid-sentence.
    samples = [VoiceSample(espeak_voice())]
    request = SpeechRequest("I have finished the refactoring of the voice library. Next I will look at it.")
    chunks = list(engine.stream(str(tmp_path), samples, request))
    rate = engine.sample_rate
    first_quiet = _quiet_runs(chunks[0], rate)
    assert not first_quiet or first_quiet[0][0] > 0 or first_quiet[0][1] <= 0.04, first_quiet
    out = np.concatenate(chunks)
    quiet = _quiet_runs(out, rate)
    assert quiet[-1][0] + quiet[-1][1] < len(out) / rate - 0.005 or quiet[-1][1] <= 0.04, quiet
    # One pause longer than a stop's closure: the one between the sentences, 0.22 s and the margins.
    pauses = [q for q in quiet if q[1] >= 0.15]
    assert len(pauses) == 1, quiet
    assert 0.22 <= pauses[0][1] <= 0.32, quiet


def test_longer_text_gives_longer_audio(engine, espeak_voice, tmp_path):
    samples = [VoiceSample(espeak_voice())]
    short = sum(len(c) for c in engine.stream(str(tmp_path), samples, SpeechRequest("Hello.")))
    long = sum(len(c) for c in engine.stream(str(tmp_path), samples, SpeechRequest("Hello. This is a much longer text with many more words to say.")))
    assert long > 2 * short


def test_prepared_voice_is_cached_in_the_voice_folder(engine, espeak_voice, tmp_path):
    samples = [VoiceSample(espeak_voice())]
    first = engine.prepare_voice(str(tmp_path), samples)
    second = engine.prepare_voice(str(tmp_path), samples)
    assert first["cached"] is False and second["cached"] is True
    files = os.listdir(tmp_path / "cache")
    assert files == [f"classic-{first['cache_key']}.json"]


def test_a_sample_rewritten_in_place_is_prepared_again(engine, espeak_voice, tmp_path):
    # Profiles are kept in memory by the identity of the sample files; a new recording at the same
    # path must not be served the old voice.
    path = espeak_voice()
    samples = [VoiceSample(path)]
    first = engine.prepare_voice(str(tmp_path), samples)
    assert engine.prepare_voice(str(tmp_path), samples) == {**first, "cached": True}
    assert espeak_voice("en-us+m3", "A different speaker reads another sentence aloud.") == path
    again = engine.prepare_voice(str(tmp_path), samples)
    assert again["cached"] is False and again["cache_key"] != first["cache_key"]
    assert again["target_median_hz"] != first["target_median_hz"]


@pytest.mark.parametrize(
    "request_, message",
    [
        (SpeechRequest("Bonjour.", language="fr"), "English only"),
        (SpeechRequest("   "), "nothing to say"),
        (SpeechRequest("Hi.", speed=9.0), "speed must be"),
    ],
)
def test_bad_requests_raise_engine_input_errors(engine, espeak_voice, tmp_path, request_, message):
    samples = [VoiceSample(espeak_voice())]
    with pytest.raises(EngineInputError, match=message):
        next(engine.stream(str(tmp_path), samples, request_))


def test_a_sample_without_speech_is_refused(engine, tmp_path):
    import soundfile as sf

    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(48000, dtype=np.float32), 24000)
    with pytest.raises(EngineInputError, match="cannot be analysed"):
        engine.prepare_voice(str(tmp_path), [VoiceSample(str(path))])


def test_unknown_engine_is_refused():
    with pytest.raises(EngineInputError, match="there is no engine 'nope'; Timbre has classic, qwen3, xtts"):
        create("nope")


def test_the_same_text_gives_the_same_audio_whatever_came_before(engine, espeak_voice, tmp_path):
    samples = [VoiceSample(espeak_voice())]
    request = SpeechRequest("Fresh fish sell for six shillings. The second sentence follows.")
    first = np.concatenate(list(engine.stream(str(tmp_path), samples, request)))
    list(engine.stream(str(tmp_path), samples, SpeechRequest("Something else entirely, to move flite's noise on.")))
    again = np.concatenate(list(engine.stream(str(tmp_path), samples, request)))
    assert np.array_equal(first, again)
