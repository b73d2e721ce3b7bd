"""Fake coqui-tts-trainer (import name trainer): Trainer and TrainerArgs as the XTTS recipe uses them.

As the real one: it parses sys.argv unless parse_command_line_args=False; it drops samples longer
than max_wav_length or max_text_length and fails when no eval sample is left; it writes
<output_path>/<run_name>-<date>/ with checkpoints and best_model.pth, and continue_path resumes there.
"""
import argparse
import json
import math
import os
import time
from dataclasses import dataclass

import soundfile as sf

import fakelog


@dataclass
class TrainerArgs:
    continue_path: str = ""
    restore_path: str = ""
    skip_train_epoch: bool = False
    start_with_eval: bool = False
    grad_accum_steps: int = 1


class Trainer:
    def __init__(self, args, config, output_path, c_logger=None, dashboard_logger=None, model=None, get_model=None,
                 get_data_loader=None, optimizer=None, scheduler=None, criterion=None, train_samples=None, eval_samples=None,
                 test_samples=None, train_loader=None, eval_loader=None, training_assets=None, parse_command_line_args=True,
                 callbacks=None, gpu=None):
        if parse_command_line_args:
            parser = argparse.ArgumentParser()
            parser.add_argument("--continue_path", default="")
            parser.add_argument("--restore_path", default="")
            parser.parse_args()  # the caller's own arguments are "unrecognized": exit 2
        self.args, self.config, self.model = args, config, model
        self.callbacks = callbacks or {}
        limit = model.args.max_wav_length / config.audio.sample_rate

        def keep(s):
            return sf.info(s["audio_file"]).duration <= limit and 0 < len(s["text"]) <= model.args.max_text_length

        self.train_samples = [s for s in train_samples if keep(s)]
        self.eval_samples = [s for s in (eval_samples or []) if keep(s)]
        if not self.eval_samples:
            raise RuntimeError(" [!] The eval set is empty after filtering by max_wav_length and max_text_length")
        if args.continue_path:
            self.output_path = args.continue_path
            with open(os.path.join(self.output_path, "trainer_state.json")) as f:
                state = json.load(f)
            self.epochs_done, self.total_steps_done = state["epochs_done"], state["total_steps_done"]
        else:
            self.output_path = os.path.join(output_path, f"{config.run_name}-{time.strftime('%B-%d-%Y_%I+%M%p')}")
            os.makedirs(self.output_path, exist_ok=True)
            self.epochs_done = self.total_steps_done = 0
        self.keep_avg_train = {"avg_loss": None}
        fakelog.record("Trainer", continue_path=args.continue_path, grad_accum_steps=args.grad_accum_steps,
                       train=len(self.train_samples), eval=len(self.eval_samples), output_path=self.output_path)

    def fit(self):
        steps = math.ceil(len(self.train_samples) / self.config.batch_size)
        for epoch in range(self.epochs_done, self.config.epochs):
            for step in range(steps):
                self.total_steps_done += 1
                self.keep_avg_train["avg_loss"] = 3.0 / (1 + epoch + step / steps)
                if "on_train_step_end" in self.callbacks:
                    self.callbacks["on_train_step_end"](self)
                print(f"   --> STEP: {step}/{steps} -- GLOBAL_STEP: {self.total_steps_done}", flush=True)
            self.epochs_done = epoch + 1
            self.eval_loss = 2.5 / (1 + epoch)
            with open(os.path.join(self.output_path, f"checkpoint_{self.total_steps_done}.pth"), "wb") as f:
                f.write(b"fake gpt checkpoint")
            with open(os.path.join(self.output_path, "best_model.pth"), "wb") as f:
                f.write(b"fake best gpt weights of epoch %d" % epoch)
            with open(os.path.join(self.output_path, "trainer_state.json"), "w") as f:
                json.dump({"epochs_done": self.epochs_done, "total_steps_done": self.total_steps_done}, f)
            if "on_epoch_end" in self.callbacks:
                self.callbacks["on_epoch_end"](self)
