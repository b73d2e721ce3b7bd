"""The provenance mark on real classic-engine speech: chunking, detection, payload, keys, crops and splices.

The attacks the field uses (codecs, resampling, noise, echo) and the false-positive count over a
thousand unmarked clips are measured by ops/eval-provenance; these tests hold the mark's contract.
"""
import os
import stat

import numpy as np
import pytest

from timbre.engines import SpeechRequest, VoiceSample
from timbre.provenance import THRESHOLD, Key, KeyError_, Marker, detect, embed

TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch."
)
KEY = Key(bytes(range(32)))
TAG = 0x5EED1234


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """About 12 s of classic-engine speech in an espeak voice, 24 kHz float32."""
    import subprocess

    from timbre.engines import create

    folder = tmp_path_factory.mktemp("voice")
    ref = str(folder / "ref.wav")
    subprocess.run(["espeak-ng", "-v", "en-us+f3", "-w", ref, "The small pup gnawed a hole in the sock. Two blue fish swam in the tank."], check=True)
    engine = create("classic")
    engine.load()
    x = np.concatenate(list(engine.stream(str(folder), [VoiceSample(ref)], SpeechRequest(TEXT))))
    assert len(x) > 10 * 24000
    return x


@pytest.fixture(scope="module")
def marked(speech):
    return embed(speech, 24000, KEY, TAG)


def test_a_stream_marked_in_chunks_of_any_size_equals_the_whole_clip_marked(speech, marked):
    rng = np.random.default_rng(7)
    for sizes in ([1, 2, 3], [4800], [511, 512, 513], list(rng.integers(1, 4800, size=40))):
        marker = Marker(KEY, TAG, 24000)
        out, i, k = [], 0, 0
        while i < len(speech):
            n = int(sizes[k % len(sizes)])
            out.append(marker.push(speech[i : i + n]))
            # Never more held back than one frame and the part of a hop not yet complete.
            assert marker.delay < 2 * 512
            i, k = i + n, k + 1
        out.append(marker.finish())
        y = np.concatenate(out)
        assert len(y) == len(speech)
        np.testing.assert_allclose(y, marked, atol=1e-6, rtol=0)


def test_the_mark_is_quiet_and_keeps_silence_silent(speech, marked):
    noise = marked.astype(np.float64) - speech
    snr = 10 * np.log10(np.sum(np.square(speech, dtype=np.float64)) / np.sum(np.square(noise)))
    assert snr >= 25
    assert np.max(np.abs(marked)) < 1.0
    silence = np.zeros(24000, dtype=np.float32)
    assert np.max(np.abs(embed(silence, 24000, KEY, TAG))) == 0.0


def test_marked_speech_is_detected_with_its_payload_and_unmarked_speech_is_not(speech, marked):
    found = detect(marked, 24000, KEY)
    assert found.detected and found.score > 2 * THRESHOLD
    assert found.payload_valid and found.tag == TAG
    clean = detect(speech, 24000, KEY)
    assert not clean.detected and clean.score < THRESHOLD
    assert clean.tag is None and not clean.payload_valid


def test_another_key_neither_detects_nor_reads_the_mark(marked):
    other = detect(marked, 24000, Key(bytes(range(1, 33))))
    assert not other.detected and other.tag is None


def test_a_crop_off_the_frame_grid_and_a_gain_change_are_still_detected(marked):
    start = 24000 * 3 + 137
    crop = marked[start : start + 5 * 24000] * np.float32(0.5)
    found = detect(crop, 24000, KEY)
    assert found.detected
    assert found.tag == TAG


def test_a_marked_stretch_spliced_into_unmarked_audio_is_found_where_it_is(speech, marked):
    rng = np.random.default_rng(3)
    other = np.roll(speech, 24000 * 4)  # unmarked speech of the same kind around it
    spliced = np.concatenate([other[: 24000 * 8], marked[24000 * 2 : 24000 * 7], other[24000 * 8 :]]) + rng.normal(0, 1e-4, len(speech) + 5 * 24000).astype(np.float32)
    found = detect(spliced, 24000, KEY)
    assert found.detected
    hits = [w for w in found.windows if w.score >= THRESHOLD]
    assert hits
    assert all(w.end > 8.0 and w.start < 13.0 for w in hits)
    assert max(hits, key=lambda w: w.score).start == pytest.approx(8.5, abs=1.5)


def test_the_mark_survives_resampling_to_another_rate(marked):
    from scipy.signal import resample_poly

    at_44k = resample_poly(marked, 147, 80)
    found = detect(at_44k, 44100, KEY)
    assert found.detected and found.tag == TAG


def test_a_key_is_created_once_private_and_never_overwritten(tmp_path):
    path = tmp_path / "provenance.key"
    first = Key.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Key.load_or_create(path) == first
    assert Key.load(path).derive("x") == first.derive("x") != Key.load_or_create(tmp_path / "other.key").derive("x")
    path.write_text("not a key\n")
    with pytest.raises(KeyError_, match="provenance key"):
        Key.load(path)


def test_the_host_marks_every_stream_and_refuses_one_that_does_not_say_how(tmp_path, espeak_voice):
    import json

    from timbre import host

    key_path = tmp_path / "provenance.key"
    Key.load_or_create(key_path)
    host.load("classic", "{}")
    host.provenance_start(str(key_path))
    samples = json.dumps([{"path": espeak_voice(), "transcript": None}])
    request = {"text": TEXT}

    with pytest.raises(RuntimeError, match="without the provenance mark"):
        next(host.stream("classic", str(tmp_path), samples, json.dumps(request)))

    marked = np.concatenate(list(host.stream("classic", str(tmp_path), samples, json.dumps({**request, "mark": {"key": str(key_path), "tag": TAG}}))))
    plain = np.concatenate(list(host.stream("classic", str(tmp_path), samples, json.dumps({**request, "mark": {"key": str(key_path), "tag": None}}))))
    assert len(marked) == len(plain)
    wav = tmp_path / "marked.wav"
    import soundfile as sf

    sf.write(wav, marked, 24000, subtype="FLOAT")
    found = json.loads(host.provenance_detect(str(key_path), str(wav)))
    assert found["detected"] and found["tag"] == TAG and found["payload_valid"]
    sf.write(wav, plain, 24000, subtype="FLOAT")
    assert not json.loads(host.provenance_detect(str(key_path), str(wav)))["detected"]


def test_ops_provenance_detect_names_the_logged_clip_and_says_when_there_is_no_mark(tmp_path, marked, speech):
    import sqlite3
    import subprocess

    import soundfile as sf

    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    (tmp_path / "provenance.key").write_text(KEY.secret.hex() + "\n")
    with sqlite3.connect(tmp_path / "provenance.db") as db:
        db.execute("CREATE TABLE clips (id TEXT PRIMARY KEY, tag INTEGER NOT NULL, created_at TEXT NOT NULL, voice TEXT NOT NULL, "
                   "engine TEXT NOT NULL, api_key TEXT NOT NULL, text_sha256 TEXT NOT NULL, audio_sha256 TEXT, seconds REAL)")
        db.execute("INSERT INTO clips VALUES ('clip_abc', ?, '2026-11-27T10:00:00+00:00', 'ada', 'classic', 'key-1234', 'x', NULL, NULL)", (TAG,))
    sf.write(tmp_path / "marked.wav", marked, 24000, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(tmp_path / "marked.wav"), "-b:a", "64k", str(tmp_path / "marked.mp3")], check=True)
    sf.write(tmp_path / "plain.wav", speech, 24000, subtype="PCM_16")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([os.path.join(root, "ops", "provenance"), "detect", *args], capture_output=True, text=True, timeout=120)

    found = run(str(tmp_path / "marked.mp3"), "--data", str(tmp_path))
    assert found.returncode == 0, found.stderr
    assert "MARKED" in found.stdout and "clip clip_abc" in found.stdout and "voice ada on classic" in found.stdout
    plain = run(str(tmp_path / "plain.wav"), "--data", str(tmp_path), "--json")
    assert plain.returncode == 1
    assert '"detected": false' in plain.stdout
    missing = run(str(tmp_path / "plain.wav"), "--data", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "Point --data at the data directory" in missing.stderr
