"""python -m finetune prepare|train|evaluate — the commands ControlPlane's jobs run as child processes.

stdout carries JSON-lines events only (finetune.progress); people read the tables on stderr.
Exit codes: 0 done, 2 the input cannot be used (an "error" event says what to change), 1 a fault
(traceback on stderr), 3 the disk is full.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback

from .progress import Progress


def _limit_cores(cores: int) -> None:
    """Training shares the machine with speech: pin to the last `cores` cores, at lower priority."""
    if cores <= 0:
        return
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(available[-cores:]))
    os.nice(10)


def _prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare

    report = prepare(args.files, args.out, speaker=args.speaker, asr_check=args.asr_check, progress=Progress("prepare"))
    usable = report["minutes_kept"] > 0
    Progress("prepare").result(**{k: v for k, v in report.items() if k != "rejections"})
    if not usable:
        Progress("prepare").error("no usable speech in any recording; see the report's files and rejections")
        return 2
    return 0


def _train(args: argparse.Namespace) -> int:
    options = json.loads(args.options or "{}")
    engine_options = json.loads(args.engine_options or "{}")
    progress = Progress("train")
    if args.engine == "classic":
        from .trainers import classic

        classic.train(args.dataset, args.out, options, progress)
    elif args.engine == "qwen3":
        from .trainers import qwen3

        qwen3.train(args.dataset, args.out, options, progress, engine_options)
    elif args.engine == "xtts":
        from .trainers import xtts

        xtts.train(args.dataset, args.out, options, progress, engine_options)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import main_evaluate

    return main_evaluate(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="recordings → dataset folder")
    p.add_argument("--out", required=True)
    p.add_argument("--speaker", default="speaker")
    p.add_argument("--asr-check", choices=("none", "sample", "all"), default="sample")
    p.add_argument("files", nargs="+", help="recordings; a transcript is the .txt of the same name beside one")
    p.set_defaults(run=_prepare)
    t = commands.add_parser("train", help="dataset folder → voice version folder")
    t.add_argument("--engine", choices=("classic", "qwen3", "xtts"), required=True)
    t.add_argument("--dataset", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--options", default="{}", help="JSON: the trainer's options")
    t.add_argument("--engine-options", default="{}", help="JSON: the engine's settings (model, device), as the server loads it")
    t.add_argument("--cores", type=int, default=0, help="pin to this many cores at lower priority (0: no limit)")
    t.set_defaults(run=_train)
    e = commands.add_parser("evaluate", help="candidate version vs the zero-shot clone")
    e.add_argument("--engine", choices=("classic", "qwen3", "xtts"), default="classic")
    e.add_argument("--engine-options", default="{}")
    e.add_argument("--dataset", required=True)
    e.add_argument("--voice-dir", required=True)
    e.add_argument("--samples", required=True, help="JSON file: the voice's samples [{path, transcript, role}]")
    e.add_argument("--candidate", required=True)
    e.add_argument("--max-clips", type=int, default=12)
    e.add_argument("--report")
    e.add_argument("--cores", type=int, default=0)
    e.set_defaults(run=_evaluate)
    args = parser.parse_args(argv)
    stage = args.command
    try:
        _limit_cores(getattr(args, "cores", 0))
        return int(args.run(args))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            Progress(stage).error("the disk is full: free space in the data directory and resume the job")
            return 3
        traceback.print_exc()
        Progress(stage).error(f"{type(e).__name__}: {e}")
        return 1
    except (ValueError, LookupError) as e:
        # The recipes raise these (DatasetError, TrainingError, EngineInputError are ValueErrors) for
        # input a person can fix.
        Progress(stage).error(str(e))
        return 2
    except Exception as e:  # noqa: BLE001 - the process boundary: report it as an event, then fail
        traceback.print_exc()
        Progress(stage).error(f"{type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
