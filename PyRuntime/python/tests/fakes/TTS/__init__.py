"""Fake coqui-tts (import name TTS), low-level XTTS API only."""
__version__ = "0.27.3+fake"
