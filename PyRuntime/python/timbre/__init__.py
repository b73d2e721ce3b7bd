"""Timbre's Python side: the speech engines hosted in-process by PyRuntime."""
