"""One worker thread that runs the most urgent job first: flite's fragments, ordered by when a listener needs them.

flite keeps settings on its shared voice, so one thread synthesises for every stream. In arrival order,
the next fragment of a stream that has just begun playing queued ahead of a new stream's first
fragment, which a listener is waiting on in silence; and under load a stream well ahead of its
listener took turns with one about to run dry. Each job here carries a deadline on the monotonic
clock (a first fragment: when its request came; a later one: when the audio already sent runs out)
and the earliest deadline runs next. Ties keep arrival order.
"""
from __future__ import annotations

import heapq
import itertools
import threading
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class DeadlineWorker:
    """Runs submitted calls one at a time on its own thread, earliest deadline first.

    A job whose future was cancelled before it started is skipped, as with ``ThreadPoolExecutor``.
    The thread is a daemon: it holds no state worth finishing when the process ends.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: list[tuple[float, int, Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def submit(self, deadline: float, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queues fn(*args, **kwargs) to run by `deadline` (``time.monotonic()`` seconds)."""
        future: Future[T] = Future()
        with self._ready:
            heapq.heappush(self._jobs, (deadline, next(self._order), future, fn, args, kwargs))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                _, _, future, fn, args, kwargs = heapq.heappop(self._jobs)
            _call(future, fn, args, kwargs)
            # Not kept alive by this frame while the worker waits for the next job.
            del future, fn, args, kwargs


def _call(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
        future.set_exception(e)
    else:
        future.set_result(result)
