"""ops/eval-classic: how closely the classic engine matches speakers it has never heard.

References come from other synthesisers or voices than the engine's base voice, so matching
has to work for real. Prints a table per speaker and overall against the targets.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

from .asr import Recognizer, word_errors
from .audio import synthesise_reference
from .engines import SpeechRequest, VoiceSample, create
from .engines.classic import analysis
from .engines.classic.flite import SAMPLE_RATE as FLITE_RATE

# Harvard sentences, list 3 for enrolment and list 1 for evaluation.
ENROL = (
    "The small pup gnawed a hole in the sock. The fish twisted and turned on the bent hook. "
    "Press the pants and sew a button on the vest. The swan dive was far short of perfect. "
    "The beauty of the view stunned the young boy. Two blue fish swam in the tank."
)
TEST = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
)
SPEAKERS = {
    "espeak-female-a": ["espeak-ng", "-v", "en-us+f3", "-s", "160"],
    "espeak-female-b": ["espeak-ng", "-v", "en-us+f4", "-p", "60", "-s", "185"],
    "espeak-male-gb": ["espeak-ng", "-v", "en-gb", "-p", "35", "-s", "140"],
    "flite-awb": ["flite", "-voice", "awb"],
    "flite-kal16": ["flite", "-voice", "kal16"],
}
TARGETS = {"f0_error_pct": 5.0, "envelope_reduction_pct": 40.0, "wer_delta_points": 10.0, "wer_abs_pct": 35.0, "rtf": 0.05}


def main() -> int:
    engine = create("classic")
    engine.load()
    asr = Recognizer()
    base_errors = base_words = 0
    base_voice = engine._flite  # the unmatched base: plain flite, same text
    assert base_voice is not None
    base_audio = {s: base_voice.synthesize(s) for s in TEST}
    for s, x in base_audio.items():
        e, n = word_errors(s, asr.transcribe(x, FLITE_RATE))
        base_errors, base_words = base_errors + e, base_words + n
    base_wer = 100.0 * base_errors / base_words
    base_env = analysis.spectral_envelope(np.concatenate(list(base_audio.values())), FLITE_RATE)

    rows = []
    with tempfile.TemporaryDirectory() as root:
        for name, cmd in SPEAKERS.items():
            vdir = os.path.join(root, name)
            os.makedirs(vdir)
            ref_path = os.path.join(vdir, "ref.wav")
            synthesise_reference(cmd, ENROL, ref_path)
            ref, ref_sr = sf.read(ref_path, dtype="float32")
            ref_f0 = analysis.pitch_stats(analysis.yin_pitch(ref, ref_sr)).median_hz
            # The reference's envelope on the test sentences, spoken by the reference voice.
            test_ref_path = os.path.join(vdir, "test_ref.wav")
            synthesise_reference(cmd, " ".join(TEST), test_ref_path)
            test_ref, _ = sf.read(test_ref_path, dtype="float32")
            ref_env = analysis.spectral_envelope(test_ref, ref_sr)

            samples = [VoiceSample(ref_path)]
            engine.prepare_voice(vdir, samples)
            errors = words = 0
            synth_s = audio_s = 0.0
            outputs = []
            for sentence in TEST:
                t0 = time.perf_counter()
                out = np.concatenate(list(engine.stream(vdir, samples, SpeechRequest(sentence))))
                synth_s += time.perf_counter() - t0
                audio_s += len(out) / engine.sample_rate
                outputs.append(out)
                e, n = word_errors(sentence, asr.transcribe(out, engine.sample_rate))
                errors, words = errors + e, words + n
            joined = np.concatenate(outputs)
            out_f0 = analysis.pitch_stats(analysis.yin_pitch(joined, engine.sample_rate)).median_hz
            out_env = analysis.spectral_envelope(joined, engine.sample_rate)
            before = analysis.envelope_distance(ref_env, base_env)
            after = analysis.envelope_distance(ref_env, out_env)
            rows.append({
                "speaker": name,
                "ref_f0": ref_f0,
                "out_f0": out_f0,
                "f0_error_pct": 100.0 * abs(out_f0 - ref_f0) / ref_f0,
                "env_before_db": before,
                "env_after_db": after,
                "envelope_reduction_pct": 100.0 * (before - after) / before,
                "wer_pct": 100.0 * errors / words,
                "rtf": synth_s / audio_s,
            })

    print(f"classic engine evaluation — base voice flite '{base_voice.name}', unmatched base WER {base_wer:.1f} %")
    header = f"{'speaker':18} {'ref F0':>7} {'out F0':>7} {'F0 err':>7} {'env before':>10} {'env after':>9} {'env red.':>8} {'WER':>6} {'RTF':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['speaker']:18} {r['ref_f0']:7.1f} {r['out_f0']:7.1f} {r['f0_error_pct']:6.1f}% "
            f"{r['env_before_db']:8.2f}dB {r['env_after_db']:7.2f}dB {r['envelope_reduction_pct']:7.1f}% "
            f"{r['wer_pct']:5.1f}% {r['rtf']:6.3f}"
        )
    worst_f0 = max(r["f0_error_pct"] for r in rows)
    mean_red = float(np.mean([r["envelope_reduction_pct"] for r in rows]))
    min_red = min(r["envelope_reduction_pct"] for r in rows)
    mean_wer = float(np.mean([r["wer_pct"] for r in rows]))
    worst_rtf = max(r["rtf"] for r in rows)
    checks = [
        ("median F0 within 5 % of the reference (worst speaker)", f"{worst_f0:.1f} %", worst_f0 <= TARGETS["f0_error_pct"]),
        ("spectral distance reduced by >= 40 % (mean; worst)", f"{mean_red:.0f} %; {min_red:.0f} %", mean_red >= TARGETS["envelope_reduction_pct"]),
        ("WER no more than 10 points above the base voice", f"{mean_wer:.1f} % vs {base_wer:.1f} %", mean_wer - base_wer <= TARGETS["wer_delta_points"]),
        ("WER at most 35 % absolute (mean)", f"{mean_wer:.1f} %", mean_wer <= TARGETS["wer_abs_pct"]),
        ("real-time factor <= 0.05 (worst speaker)", f"{worst_rtf:.3f}", worst_rtf <= TARGETS["rtf"]),
    ]
    print()
    for label, value, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}: {value}")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
