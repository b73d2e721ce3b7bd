"""The provenance mark: every clip Timbre makes carries a keyed, inaudible mark that Timbre can find again."""
from .detect import THRESHOLD, Detection, Window, detect
from .mark import Key, KeyError_, Marker, Pattern, embed

__all__ = ["THRESHOLD", "Detection", "Key", "KeyError_", "Marker", "Pattern", "Window", "detect", "embed"]
