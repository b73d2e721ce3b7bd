"""Fake torch: the few parts Timbre's GPU adapters use (dtypes, seeding, tensors, save/load, cuda)."""
from __future__ import annotations

import io
import os
import pickle

import numpy as np

import fakelog

__version__ = "2.8.0+fake"


class dtype:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"torch.{self.name}"


bfloat16 = dtype("bfloat16")
float16 = dtype("float16")
float32 = dtype("float32")


def _rebuild_tensor(data: bytes, kind: str, shape: tuple, device: str) -> "Tensor":
    return Tensor(np.frombuffer(data, dtype=kind).reshape(shape).copy(), device)


class Tensor:
    def __init__(self, data, device: str = "cpu") -> None:
        self._data = np.asarray(data)
        self.device = device

    @property
    def shape(self):
        return self._data.shape

    def __len__(self) -> int:
        return len(self._data)

    def detach(self) -> "Tensor":
        return self

    def cpu(self) -> "Tensor":
        return Tensor(self._data, "cpu")

    def cuda(self) -> "Tensor":
        return Tensor(self._data, "cuda:0")

    def to(self, device) -> "Tensor":
        return Tensor(self._data, str(device))

    def float(self) -> "Tensor":
        return Tensor(self._data.astype(np.float32), self.device)

    def numpy(self) -> np.ndarray:
        if self.device != "cpu":
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first.")
        return self._data

    def __reduce__(self):
        return (_rebuild_tensor, (self._data.tobytes(), self._data.dtype.str, self._data.shape, "cpu"))


def tensor(data, device: str = "cpu") -> Tensor:
    return Tensor(np.asarray(data), device)


_seed = 0
_rng = np.random.default_rng(0)


def manual_seed(seed: int):
    global _seed, _rng
    _seed = int(seed)
    _rng = np.random.default_rng(_seed)
    return None


def initial_seed() -> int:
    return _seed


def random_generator() -> np.random.Generator:
    """The fake's global generator, as torch's is: seeded by manual_seed."""
    return _rng


class cuda:
    @staticmethod
    def is_available() -> bool:
        return os.environ.get("TIMBRE_FAKE_CUDA", "1") != "0"

    @staticmethod
    def empty_cache() -> None:
        fakelog.record("torch.cuda.empty_cache")


def save(obj, f) -> None:
    with open(f, "wb") as out:
        pickle.dump(obj, out)


class _WeightsOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("torch", "_rebuild_tensor"):
            return _rebuild_tensor
        raise pickle.UnpicklingError(
            f"Weights only load failed. Unsupported global: GLOBAL {module}.{name} was not an allowed global by default."
        )


def load(f, map_location=None, weights_only=None):
    with open(f, "rb") as source:
        data = source.read()
    if weights_only:
        return _WeightsOnly(io.BytesIO(data)).load()
    return pickle.loads(data)
