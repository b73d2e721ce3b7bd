"""prepare: recordings to aligned clips, the files each engine's recipe reads, and rejections with reasons."""
import io
import json
import os
import subprocess

import numpy as np
import soundfile as sf

from finetune.prepare import align_sentences, prepare
from finetune.progress import Progress
from timbre import enrol


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("|") for line in f]


def test_each_clip_holds_exactly_the_sentences_said_in_it(dataset, recordings):
    out, report = dataset
    clips = [json.loads(line) for line in open(os.path.join(out, "clips.jsonl"), encoding="utf-8")]
    by_name = {os.path.basename(p): spans for p, spans in recordings.items()}
    assert len(clips) >= 40
    for clip in clips:
        # (espeak's audio of a sentence ends in its own silence, so a sentence is in the clip that
        # holds its middle)
        said = [text for start, end, text in by_name[clip["recording"]] if clip["start"] <= (start + end) / 2 <= clip["end"]]
        assert clip["text"] == " ".join(said), clip
        assert 2.0 <= clip["end"] - clip["start"] <= 12.5
        assert clip["source"] == "transcript"
    # Almost every sentence ends up in a clip.
    total = sum(len(spans) for spans in recordings.values())
    covered = sum(len(c["text"].split(". ")) for c in clips)
    assert covered >= 0.9 * total


def test_outputs_are_what_the_upstream_recipes_read(dataset):
    out, report = dataset
    kept = _rows(os.path.join(out, "metadata.csv"))
    train, held = _rows(os.path.join(out, "metadata_train.csv")), _rows(os.path.join(out, "metadata_eval.csv"))
    assert all(len(r) == 2 and r[1] for r in kept)
    assert sorted(train + held) == sorted(kept)
    # Held out by position: the last clips of each take.
    for take in ("r01", "r02"):
        mine = [r[0] for r in kept if r[0].startswith(take)]
        assert [r[0] for r in held if r[0].startswith(take)] == mine[len(mine) - len([r for r in held if r[0].startswith(take)]):]
    assert 0.05 <= len(held) / len(kept) <= 0.15
    for name, _ in kept[:5]:
        x, sr = sf.read(os.path.join(out, "wavs", name + ".wav"))
        assert sr == 24000 and x.ndim == 1
    ref, sr = sf.read(os.path.join(out, "ref.wav"))
    assert sr == 24000 and 5.0 <= len(ref) / sr <= 12.5
    lines = [json.loads(line) for line in open(os.path.join(out, "qwen3_train.jsonl"), encoding="utf-8")]
    assert len(lines) == len(train)
    assert all(set(line) == {"audio", "text", "ref_audio"} and os.path.isabs(line["audio"]) for line in lines)
    assert len({line["ref_audio"] for line in lines}) == 1
    coqui = _rows(os.path.join(out, "xtts_eval.csv"))
    assert coqui[0] == ["audio_file", "text", "speaker_name"]
    assert all(r[0].startswith("wavs/") and r[2] == "gb" for r in coqui[1:])
    assert report["minutes_kept"] > 2.0 and report["pitch"]["median_hz"] > 60
    assert report["words_per_minute"] > 60


def test_alignment_skips_speech_that_is_in_no_sentence():
    rate = enrol.SAMPLE_RATE

    def region(start, seconds):
        return enrol.Region(int(start * rate), int((start + seconds) * rate))

    # Sixteen sentences in the transcript, read at a steady pace; after the fifth the reader says
    # something the transcript does not have ("sorry, once more"), and the eleventh is never read.
    # (Durations are all the aligner has: an aside as long as a sentence, or a sentence read twice,
    # is indistinguishable from it, and the recogniser's check catches those.)
    from finetune.speakers import sentences

    texts = sentences(16, seed=3)
    found, t = [], 0.5
    for k, sentence in enumerate(texts):
        if k == 10:
            continue
        found.append(region(t, 0.07 * sum(c.isalnum() for c in sentence)))
        t = found[-1].end / rate + 0.6
        if k == 4:
            found.append(region(t, 1.2))
            t = found[-1].end / rate + 0.6
    spans = align_sentences(found, " ".join(texts))
    assert (5, 6, None) in spans, spans
    assert " ".join(x for _, _, x in spans if x) == " ".join(texts[:10] + texts[11:])
    # Each sentence is matched to its own stretch of speech (none is pushed onto the aside).
    for a, b, x in spans:
        if x:
            assert b - a == sum(x.count(p) for p in ".?!"), (a, b, x)


def test_bad_files_are_reported_and_the_rest_proceed(recordings, tmp_path):
    good = sorted(recordings)[0]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    silent = tmp_path / "silent.flac"
    sf.write(silent, np.zeros(24000 * 5, dtype=np.float32), 24000)
    other = tmp_path / "notes.doc"
    other.write_text("hello")
    events = io.StringIO()
    report = prepare([str(broken), good, str(silent), str(other)], str(tmp_path / "out"), asr_check="none", progress=Progress("prepare", events))
    errors = {f["file"]: f.get("error", "") for f in report["files"]}
    assert "broken.wav" in errors["broken.wav"] and errors["broken.wav"]
    assert "no speech" in errors["silent.flac"]
    assert "unsupported type" in errors["notes.doc"]
    assert errors[os.path.basename(good)] == ""
    assert report["clips"] > 10
    warnings = [json.loads(line) for line in events.getvalue().splitlines() if '"warning"' in line]
    assert len(warnings) == 3


def test_clipped_and_too_long_stretches_are_rejected_with_reasons(recordings, tmp_path):
    spans = recordings[sorted(recordings)[0]][:6]
    x, sr = sf.read(sorted(recordings)[0], dtype="float32")
    x = x[: int((spans[-1][1] + 0.5) * sr)]
    # Clip the second sentence hard; join the fourth and fifth without a pause (over 12 s together
    # with the sixth is not possible, so make one stretch long by removing the pauses).
    start, end, _ = spans[1]
    seg = slice(int(start * sr), int(end * sr))
    x[seg] = np.clip(x[seg] * 40, -0.5, 0.5)
    a, b = int(spans[3][1] * sr), int(spans[4][0] * sr)
    c, d = int(spans[4][1] * sr), int(spans[5][0] * sr)
    x = np.concatenate([x[:a], x[b:c], x[d:]])
    long_take = tmp_path / "take.wav"
    sf.write(long_take, np.concatenate([x, x[int(spans[3][0] * sr):]]), sr)
    texts = [t for _, _, t in spans]
    (tmp_path / "take.txt").write_text(" ".join(texts + texts[3:]))
    report = prepare([str(long_take)], str(tmp_path / "out"), asr_check="none", progress=Progress("prepare", io.StringIO()))
    reasons = {r["reason"] for r in report["rejections"]}
    assert "clipped" in reasons, report["rejections"]
    assert report["rejected"]["clipped"] >= 1


def test_without_a_transcript_the_words_come_from_speech_recognition(recordings, tmp_path):
    from finetune.speakers import recording, sentences

    take = str(tmp_path / "untranscribed.wav")
    recording("flite-slt", sentences(6, seed=5), take, transcript=False)
    report = prepare([take], str(tmp_path / "out"), asr_check="none", progress=Progress("prepare", io.StringIO()))
    clips = [json.loads(line) for line in open(tmp_path / "out" / "clips.jsonl", encoding="utf-8")]
    assert clips and all(c["source"] == "asr" and c["text"] for c in clips)
    assert report["transcripts"] == {"transcript": 0, "asr": len(clips)}


def test_the_command_line_reports_progress_and_exits_2_on_unusable_input(tmp_path):
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    env = {**os.environ, "PYTHONPATH": f"{root}/PyRuntime/python:{root}"}
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(24000 * 3, dtype=np.float32), 24000)
    done = subprocess.run(["/usr/bin/python3", "-m", "finetune", "prepare", "--out", str(tmp_path / "out"), str(silent)],
                          capture_output=True, text=True, env=env, cwd=root)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 2, done.stderr
    assert events[-1]["type"] == "error" and "no usable speech" in events[-1]["message"]
    assert any(e["type"] == "warning" and "no speech" in e["message"] for e in events)


def test_a_full_disk_ends_the_command_with_exit_3_and_says_so(recordings, tmp_path, monkeypatch, capsys):
    import errno

    from finetune import __main__ as cli
    from finetune import prepare as module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module.sf, "write", full)
    code = cli.main(["prepare", "--out", str(tmp_path / "out"), "--asr-check", "none", sorted(recordings)[0]])
    assert code == 3
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["type"] == "error" and "disk is full" in last["message"]
