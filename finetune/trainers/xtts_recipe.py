"""The XTTS-v2 GPT fine-tuning recipe (coqui-tts recipes/ljspeech/xtts_v2/train_gpt_xtts.py), Timbre's way.

Run by finetune/trainers/xtts.py as a child process, because coqui's Trainer writes to stdout and
sets up logging of its own. Its settings are the upstream recipe's, with the traps ENGINES.md lists
defused: parse_command_line_args=False, epochs set, an explicit eval list (the coqui CSVs prepare
wrote), the base model's DVAE, mel statistics, checkpoint and vocabulary named. Progress leaves as
"TIMBRE_EVENT {json}" lines from the Trainer's callbacks.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys


def _event(**fields) -> None:
    sys.stdout.write("TIMBRE_EVENT " + json.dumps(fields) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--grad-accum", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--language", default="en")
    args = parser.parse_args()

    from trainer import Trainer, TrainerArgs
    from TTS.config.shared_configs import BaseDatasetConfig
    from TTS.tts.datasets import load_tts_samples
    from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTArgs, GPTTrainer, GPTTrainerConfig, XttsAudioConfig

    dataset = BaseDatasetConfig(formatter="coqui", dataset_name="timbre", path=args.dataset, meta_file_train="xtts_train.csv",
                                meta_file_val="xtts_eval.csv", language=args.language)
    model_args = GPTArgs(
        max_conditioning_length=132300, min_conditioning_length=66150, debug_loading_failures=False,
        max_wav_length=255995, max_text_length=200,
        mel_norm_file=os.path.join(args.base, "mel_stats.pth"), dvae_checkpoint=os.path.join(args.base, "dvae.pth"),
        xtts_checkpoint=os.path.join(args.base, "model.pth"), tokenizer_file=os.path.join(args.base, "vocab.json"),
        gpt_num_audio_tokens=1026, gpt_start_audio_token=1024, gpt_stop_audio_token=1025,
        gpt_use_masking_gt_prompt_approach=True, gpt_use_perceiver_resampler=True,
    )
    config = GPTTrainerConfig(
        output_path=args.out, model_args=model_args, run_name="timbre_xtts", project_name="timbre", run_description="Timbre fine-tuning",
        dashboard_logger="tensorboard", logger_uri=None, audio=XttsAudioConfig(sample_rate=22050, dvae_sample_rate=22050, output_sample_rate=24000),
        batch_size=args.batch_size, batch_group_size=48, eval_batch_size=args.batch_size, num_loader_workers=2,
        eval_split_max_size=256, print_step=50, plot_step=100, log_model_step=1000, save_step=10000, save_n_checkpoints=1,
        save_checkpoints=True, print_eval=False, optimizer="AdamW", optimizer_wd_only_on_weights=True,
        optimizer_params={"betas": [0.9, 0.96], "eps": 1e-8, "weight_decay": 1e-2}, lr=args.lr, lr_scheduler="MultiStepLR",
        lr_scheduler_params={"milestones": [50000 * 18, 150000 * 18, 300000 * 18], "gamma": 0.5, "last_epoch": -1},
        test_sentences=[], epochs=args.epochs,
    )
    model = GPTTrainer.init_from_config(config)
    train_samples, eval_samples = load_tts_samples([dataset], eval_split=True, eval_split_max_size=config.eval_split_max_size,
                                                   eval_split_size=config.eval_split_size)
    steps = max(1, math.ceil(len(train_samples) / args.batch_size))
    # A run folder left by an interrupted run is continued from its last checkpoint.
    runs = sorted(glob.glob(os.path.join(args.out, "timbre_xtts-*")), key=os.path.getmtime)
    resume = next((r for r in reversed(runs) if glob.glob(os.path.join(r, "checkpoint_*.pth"))), "")

    def step_end(trainer) -> None:
        if trainer.total_steps_done % 10 == 0:
            # coqui keeps running averages in a KeepAverage (avg_values); read it either way.
            averages = getattr(trainer, "keep_avg_train", None)
            values = averages if isinstance(averages, dict) else getattr(averages, "avg_values", {})
            loss = values.get("avg_loss")
            _event(kind="step", epoch=trainer.epochs_done + 1, step=trainer.total_steps_done, steps=steps * args.epochs, loss=loss)

    def epoch_end(trainer) -> None:
        _event(kind="epoch", epoch=trainer.epochs_done, eval_loss=getattr(trainer, "eval_loss", None), run=trainer.output_path)

    trainer = Trainer(TrainerArgs(restore_path=None, continue_path=resume, skip_train_epoch=False, start_with_eval=False,
                                  grad_accum_steps=args.grad_accum),
                      config, output_path=args.out, model=model, train_samples=train_samples, eval_samples=eval_samples,
                      parse_command_line_args=False, callbacks={"on_train_step_end": step_end, "on_epoch_end": epoch_end})
    if resume:
        _event(kind="resumed", run=resume, epoch=getattr(trainer, "epochs_done", 0))
    trainer.fit()
    _event(kind="done", run=trainer.output_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
