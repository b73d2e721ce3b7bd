"""Cutting a long recording into clips and giving each the sentences said in it.

Speech is found by enrolment's activity detector (timbre.enrol); cuts fall in pauses. With a
transcript, sentences are matched to stretches of speech by durations alone, which is fast and
drift-free over hours; without one, clips are cut at the longest pauses and recognised later.
"""
from __future__ import annotations

import math

import numpy as np

from timbre import enrol
from timbre.text import sentences as split_sentences

RATE = enrol.SAMPLE_RATE
MIN_CLIP_S, MAX_CLIP_S = 2.0, 12.0


def letters(text: str) -> int:
    """Letters and digits: what a sentence's reading time is taken in proportion to."""
    return max(1, sum(c.isalnum() for c in text))


def _spans(found: list[enrol.Region]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Cut points between regions (sample positions), the speech seconds before each cut, and the
    pause length at each cut."""
    cuts = [found[0].start]
    for a, b in zip(found, found[1:]):
        cuts.append((a.end + b.start) // 2)
    cuts.append(found[-1].end)
    speech = np.concatenate([[0.0], np.cumsum([r.seconds for r in found])])
    pauses = np.array([1.0] + [(b.start - a.end) / RATE for a, b in zip(found, found[1:])] + [1.0])
    return cuts, speech, pauses


def align_sentences(found: list[enrol.Region], text: str) -> list[tuple[int, int, str | None]]:
    """Stretches of speech (region index ranges) and the sentences spoken in each; see _align."""
    spans, rate = _align(found, text, None)
    # Speech in no sentence (an aside, a retake) inflates the first estimate of the reader's pace;
    # the pace of the stretches that matched is the better one.
    if spans:
        spans2, rate2 = _align(found, text, rate)
        if spans2:
            return spans2
    return spans


def _align(found: list[enrol.Region], text: str, rate: float | None) -> tuple[list[tuple[int, int, str | None]], float]:
    """Stretches of speech (region index ranges) and the sentences spoken in each.

    A dynamic programme over (cut, sentence): a step joins regions r..r' (ending at a pause) with
    sentences s..s'; its cost is the squared log ratio of the stretch's speech time to the time its
    letters predict at the recording's own rate, plus a penalty for ending at a short pause (inside
    a sentence) and for clips outside 2–12 s. Speech no sentence fits, or a sentence not read, is
    skipped at a price. A band around the proportional position keeps hours of audio fast.
    """
    items = split_sentences(text, max_chars=400)
    if not items or not found:
        return ([(0, len(found), None)] if found else []), 0.0
    cumulative = np.concatenate([[0], np.cumsum([letters(s) for s in items])])
    cuts, speech, pauses = _spans(found)
    n_regions, n_sent = len(found), len(items)
    rate = rate or speech[-1] / cumulative[-1]  # seconds of speech per letter
    band = max(60.0, 0.1 * speech[-1])
    max_regions, max_sentences = 12, 4
    # Skipping costs less than forcing a stretch onto sentences it does not fit (a third too long
    # costs 0.66, twice as long 3.8), so an aside is left out rather than shifting what follows.
    skip = 0.3
    inf = math.inf
    cost = np.full((n_regions + 1, n_sent + 1), inf)
    back: dict[tuple[int, int], tuple[int, int]] = {}
    cost[0, 0] = 0.0

    def near(r: int, s: int) -> bool:
        return abs(speech[r] - cumulative[s] * rate) <= band

    for r in range(n_regions + 1):
        for s in range(n_sent + 1):
            here = cost[r, s]
            if here == inf:
                continue
            # Skip a sentence that was not read, or speech that is in no sentence.
            if s < n_sent and here + skip < cost[r, s + 1]:
                cost[r, s + 1], back[(r, s + 1)] = here + skip, (r, s)
            aside = here + skip + 0.1 * found[r].seconds if r < n_regions else inf
            if r < n_regions and aside < cost[r + 1, s]:
                cost[r + 1, s], back[(r + 1, s)] = aside, (r, s)
            for r2 in range(r + 1, min(n_regions, r + max_regions) + 1):
                wall = (found[r2 - 1].end - found[r].start) / RATE
                if wall > MAX_CLIP_S:
                    break
                spoken = speech[r2] - speech[r]
                for s2 in range(s + 1, min(n_sent, s + max_sentences) + 1):
                    if not near(r2, s2):
                        continue
                    expected = (cumulative[s2] - cumulative[s]) * rate
                    c = math.log(spoken / expected) ** 2 * 8.0
                    c += 0.6 * max(0.0, 1.0 - pauses[r2] / 0.5)  # ends at a short pause: likely mid-sentence
                    if wall < MIN_CLIP_S:
                        c += 0.5
                    # Each clip is a training pair: one or two sentences align more exactly than four.
                    c += 0.05 * (s2 - s) ** 2 - 0.25
                    total = here + c
                    if total < cost[r2, s2]:
                        cost[r2, s2], back[(r2, s2)] = total, (r, s)
    out: list[tuple[int, int, str | None]] = []
    node = (n_regions, n_sent)
    spoken_total = letters_total = 0.0
    while node != (0, 0):
        prev = back[node]
        (r, s), (r2, s2) = prev, node
        if r2 > r:
            out.append((r, r2, " ".join(items[s:s2]) if s2 > s else None))
            if s2 > s:
                spoken_total += speech[r2] - speech[r]
                letters_total += cumulative[s2] - cumulative[s]
        node = prev
    return out[::-1], (spoken_total / letters_total if letters_total else rate)


def split_at_pauses(found: list[enrol.Region]) -> list[tuple[int, int]]:
    """Clips of 2–12 s cut at the longest pauses, for recordings without a transcript."""
    out: list[tuple[int, int]] = []
    r = 0
    while r < len(found):
        best, best_pause = r + 1, -1.0
        for r2 in range(r + 1, len(found) + 1):
            wall = (found[r2 - 1].end - found[r].start) / RATE
            if wall > MAX_CLIP_S:
                break
            pause = (found[r2].start - found[r2 - 1].end) / RATE if r2 < len(found) else 10.0
            # Prefer the longest pause once the clip is long enough; a sentence end is a long pause.
            if wall >= MIN_CLIP_S and pause + 0.02 * wall > best_pause:
                best, best_pause = r2, pause + 0.02 * wall
        out.append((r, best))
        r = best
    return out
