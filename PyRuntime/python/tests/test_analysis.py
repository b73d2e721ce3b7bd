import numpy as np
import pytest

from timbre.engines.classic import analysis
from timbre.engines.classic.psola import shift_pitch


def tone(f0: float, sr: int = 16000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    # A few harmonics so it looks like a voiced sound, not a bare sine.
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.3


@pytest.mark.parametrize("f0", [85.0, 120.0, 210.0, 330.0])
def test_yin_finds_the_fundamental_of_harmonic_tones(f0):
    track = analysis.yin_pitch(tone(f0), 16000)
    assert np.median(track[track > 0]) == pytest.approx(f0, rel=0.01)


def test_yin_reports_silence_as_unvoiced():
    assert not analysis.yin_pitch(np.zeros(16000), 16000).any()


def test_pitch_stats_refuse_audio_without_voice():
    with pytest.raises(ValueError, match="no voiced speech"):
        analysis.pitch_stats(np.zeros(100))


@pytest.mark.parametrize("target", [80.0, 160.0, 240.0])
def test_psola_moves_median_pitch_to_target_and_keeps_duration(target):
    x = tone(120.0)
    y = shift_pitch(x, 16000, target, 1.0)
    assert len(y) == len(x)
    track = analysis.yin_pitch(y, 16000)
    assert np.median(track[track > 0]) == pytest.approx(target, rel=0.03)


def test_envelope_distance_ignores_level_but_not_shape():
    env = np.linspace(0, -30, analysis.ENVELOPE_BINS)
    assert analysis.envelope_distance(env, env - 12) == pytest.approx(0, abs=1e-9)
    assert analysis.envelope_distance(env, env[::-1]) > 10
