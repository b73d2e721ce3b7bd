"""flite's queue runs the most urgent fragment first (engines/classic/deadline.py), and the classic
engine dates its fragments by when a listener needs them."""
import threading
import time

import pytest

from timbre.engines import SpeechRequest, VoiceSample
from timbre.engines.classic.deadline import DeadlineWorker


def _busy(worker: DeadlineWorker) -> threading.Event:
    """Occupies the worker until the returned event is set, so that what is submitted next queues."""
    started, release = threading.Event(), threading.Event()
    worker.submit(float("-inf"), lambda: (started.set(), release.wait(10)))
    assert started.wait(10)
    return release


def test_the_earliest_deadline_runs_first_and_ties_keep_arrival_order():
    worker = DeadlineWorker("test")
    release = _busy(worker)
    ran = []
    futures = [worker.submit(deadline, ran.append, name) for deadline, name in
               [(30.0, "late"), (10.0, "first of two at 10"), (20.0, "middle"), (10.0, "second of two at 10"), (5.0, "soonest")]]
    release.set()
    for f in futures:
        f.result(10)
    assert ran == ["soonest", "first of two at 10", "second of two at 10", "middle", "late"]


def test_a_job_cancelled_while_queued_never_runs_and_one_that_raises_hands_its_error_over():
    worker = DeadlineWorker("test")
    release = _busy(worker)
    ran = []
    dropped = worker.submit(1.0, ran.append, "dropped")
    failing = worker.submit(2.0, lambda: 1 / 0)
    kept = worker.submit(3.0, ran.append, "kept")
    assert dropped.cancel()
    release.set()
    kept.result(10)
    assert ran == ["kept"] and dropped.cancelled()
    with pytest.raises(ZeroDivisionError):
        failing.result(10)
    # The worker survives a job's error and keeps serving.
    assert worker.submit(0.0, lambda: "still here").result(10) == "still here"


def test_fragments_are_due_when_the_request_came_then_when_the_audio_sent_runs_out(engine, espeak_voice, tmp_path):
    samples = [VoiceSample(espeak_voice())]
    engine.prepare_voice(str(tmp_path), samples)
    submitted = []
    original = engine._synth.submit

    def recording(deadline, fn, /, *args, **kwargs):
        submitted.append((deadline, args[0]))
        return original(deadline, fn, *args, **kwargs)

    engine._synth.submit = recording
    try:
        called = time.monotonic()
        gen = engine.stream(str(tmp_path), samples, SpeechRequest("First sentence here. Second one. Third one."))
        first = next(gen)
        sent = time.monotonic()
        second = next(gen)
        list(gen)
    finally:
        del engine._synth.submit
    (d0, t0), (d1, t1), (d2, t2) = submitted
    assert (t0, t1, t2) == ("First sentence here.", "Second one.", "Third one.")
    # The first fragment is already due: it goes ahead of every later fragment of the streams playing.
    assert called <= d0 <= sent
    # The second is due when the first chunk (with its pause) has played from when it left.
    assert d1 == pytest.approx(sent + len(first) / engine.sample_rate, abs=0.05)
    # The third is queued while the second is still being finished: due when the first chunk and an
    # estimate of the second (this stream's seconds per character so far) have played. flite's silence
    # at each fragment's edges makes the rate of fragments this short rough: within a third.
    assert d2 - d1 == pytest.approx(len(second) / engine.sample_rate, rel=0.35)
