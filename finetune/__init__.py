"""Timbre's fine-tuning recipes: prepare a dataset, train a voice per engine, evaluate it against
the zero-shot clone. Run as `python -m finetune prepare|train|evaluate`; ControlPlane runs the
same commands as child processes and reads their JSON-lines progress."""
