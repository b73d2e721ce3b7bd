import json
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path[:0] = [os.path.join(ROOT, "PyRuntime", "python"), ROOT]

from finetune.speakers import recording, sentences  # noqa: E402

SPEAKER = "espeak-male-gb"


@pytest.fixture(scope="session")
def recordings(tmp_path_factory):
    """Two takes by a speaker of another synthesiser, about 2.7 minutes of speech with transcripts,
    and where each sentence was said."""
    folder = tmp_path_factory.mktemp("recordings")
    texts = sentences(52, seed=11)
    spans = {}
    for k, part in enumerate((texts[:26], texts[26:])):
        path = str(folder / f"take-{k + 1}.wav")
        spans[path] = recording(SPEAKER, part, path, seed=k)
    return spans


@pytest.fixture(scope="session")
def dataset(recordings, tmp_path_factory):
    """The takes prepared into a dataset folder, and its report."""
    from finetune.prepare import prepare
    from finetune.progress import Progress
    import io

    out = str(tmp_path_factory.mktemp("dataset"))
    report = prepare(sorted(recordings), out, speaker="gb", asr_check="none", progress=Progress("prepare", io.StringIO()))
    return out, report


@pytest.fixture(scope="session")
def version(dataset, tmp_path_factory):
    """A classic version trained on the dataset (few iterations, a fixed strength: the search over
    strengths is tested on its own)."""
    import io

    from finetune.progress import Progress
    from finetune.trainers import classic

    out = str(tmp_path_factory.mktemp("version"))
    events = io.StringIO()
    manifest = classic.train(dataset[0], out, {"max_iterations": 4, "strength": 0.75}, Progress("train", events))
    return out, manifest, [json.loads(line) for line in events.getvalue().splitlines()]


FAKES = os.path.join(ROOT, "PyRuntime", "python", "tests", "fakes")


@pytest.fixture
def fake_gpu(tmp_path, monkeypatch):
    """The fakes of the GPU packages (torch, qwen_tts, TTS, trainer) and flash_attn, importable here
    and in the recipes' child processes, forgotten after the test; yields the fakes' call log path."""
    extra = tmp_path / "site"
    (extra / "flash_attn").mkdir(parents=True)
    (extra / "flash_attn" / "__init__.py").write_text("")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([FAKES, str(extra), os.path.join(ROOT, "PyRuntime", "python"), ROOT]))
    monkeypatch.setenv("TIMBRE_FAKE_LOG", str(log))
    monkeypatch.syspath_prepend(FAKES)
    monkeypatch.syspath_prepend(str(extra))
    yield log
    for name in list(sys.modules):
        if (getattr(sys.modules[name], "__file__", None) or "").startswith((FAKES, str(extra))):
            del sys.modules[name]


def calls(log):
    """The fakes' calls, in order."""
    return [json.loads(line) for line in open(log, encoding="utf-8")] if os.path.exists(log) else []
