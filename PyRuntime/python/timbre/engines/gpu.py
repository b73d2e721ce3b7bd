"""What the GPU engines share: whether they can run here, torch tensors to numpy, atomic saves."""
from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from .protocol import EngineUnavailableError


def availability(package: str, device: str) -> dict[str, Any]:
    """Whether an engine can run here, and why not, without importing its model code."""
    missing = [p for p in ("torch", package) if importlib.util.find_spec(p) is None]
    if missing:
        return {"available": False, "reason": f"{' and '.join(missing)} not installed: run ops/install-gpu"}
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return {"available": False, "reason": "no CUDA GPU visible to torch"}
    return {"available": True, "reason": None}


def require_cuda(engine: str, device: str, torch: Any) -> None:
    """Refuses to load a model onto a CUDA device that torch cannot see."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineUnavailableError(f"{engine} needs a CUDA GPU and torch sees none (torch.cuda.is_available() is False)")


def to_numpy(audio: Any) -> np.ndarray:
    """A 1-D float32 array from a torch tensor on any device, a list of floats or an array."""
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().float().numpy()
    return np.asarray(audio, dtype=np.float32).reshape(-1)


def save_atomic(torch: Any, value: Any, path: str) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves half a cache entry."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        torch.save(value, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def free_cuda_memory() -> None:
    """Return the memory of dropped models to the driver, so other programs can use the GPU."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
