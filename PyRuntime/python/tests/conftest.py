import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

FAKES = os.path.join(os.path.dirname(__file__), "fakes")


@pytest.fixture
def fakes(monkeypatch):
    """The fake GPU packages (tests/fakes) importable for one test, and forgotten after it, so the
    next test sees this machine as it is. Yields the fakes' call log module."""
    monkeypatch.syspath_prepend(FAKES)
    import fakelog

    fakelog.CALLS.clear()
    yield fakelog
    for name in list(sys.modules):
        module = sys.modules[name]
        if (getattr(module, "__file__", None) or "").startswith(FAKES) or name.startswith("flash_attn"):
            del sys.modules[name]


@pytest.fixture(scope="session")
def engine():
    from timbre.engines import create

    e = create("classic")
    e.load()
    return e


@pytest.fixture
def espeak_voice(tmp_path):
    """A reference voice made by a different synthesiser (espeak-ng), 24 kHz mono."""

    def make(variant: str = "en-us+f3", text: str = "The small pup gnawed a hole in the sock. Two blue fish swam in the tank.") -> str:
        from timbre.audio import synthesise_reference

        return synthesise_reference(["espeak-ng", "-v", variant], text, str(tmp_path / "ref.wav"))

    return make
