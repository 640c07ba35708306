"""Bounded, shared, cancellable computations.

* **One computation per key** (single flight): every request needing the same key (data
  version, rule, date) waits for the same computation; other keys never wait behind it.
* **Bounded**: at most ``max_running`` computations run at once and ``max_queued`` more wait
  for a slot; a new key beyond that is refused (:class:`~api.errors.Busy`, a 503 with
  ``Retry-After``), and so is any new key while the process's memory is above the admission
  share of the memory limit.
* **Cancelled when unwanted**: each HTTP request holds a :class:`Claim` (set by the
  middleware: its deadline, and whether its client is gone). A computation runs under a
  :class:`geo._cancel.CancelToken` whose deadline is the latest of its requests'; when its last
  request leaves (time limit, client gone) the token is cancelled, and the engine stops at its
  next checkpoint. The memory limit cancels computations at checkpoints too.

Computations run in daemon threads: a computation still running never holds up the exit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from riskmap.api.errors import Busy
from riskmap.geo._cancel import CancelToken, cancellable, rss_bytes, trim_memory

log = logging.getLogger("riskmap")
T = TypeVar("T")


class Claim:
    """One HTTP request waiting for computations: its deadline (monotonic seconds) and
    whether it is gone (time limit passed, client disconnected, server stopping)."""

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def leave(self, reason: str) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            listeners, self._listeners = self._listeners, []
        for f in listeners:
            f()

    @property
    def gone(self) -> bool:
        return self.reason is not None or (
            self.deadline is not None and time.monotonic() >= self.deadline
        )

    def on_leave(self, f: Callable[[], None]) -> Callable[[], None]:
        """Call ``f`` when the request leaves; returns a function that undoes it."""
        with self._lock:
            if self.reason is None:
                self._listeners.append(f)
                return lambda: self._forget(f)
        f()
        return lambda: None

    def _forget(self, f: Callable[[], None]) -> None:
        with self._lock:
            if f in self._listeners:
                self._listeners.remove(f)


_claim: ContextVar[Claim | None] = ContextVar("riskmap_claim", default=None)


@contextmanager
def claiming(claim: Claim) -> Iterator[Claim]:
    """Requests made in this block (and the threads it starts) hold ``claim``."""
    reset = _claim.set(claim)
    try:
        yield claim
    finally:
        _claim.reset(reset)


def current_claim() -> Claim | None:
    return _claim.get()


class RequestGone(Busy):
    """The request waiting for a computation left (its answer is, or will be, a 503)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the request ended before its answer was ready: {reason}")


@lru_cache(maxsize=1)
def machine_memory() -> int | None:
    """Bytes of memory this process may use: the cgroup's limit if there is one, else the
    machine's (MemTotal); None where neither can be read."""
    total = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                raw = f.read().strip()
        except OSError:
            continue
        if raw.isdigit() and (total is None or int(raw) < total):
            total = int(raw)
        break
    return total


@dataclass(frozen=True)
class WorkLimits:
    """Limits of the computations of one service."""

    max_running: int = 2
    max_queued: int = 8
    memory_limit: int | None = None  # bytes of resident memory of the process
    admit_share: float = 0.8  # no new computation above this share of the memory limit
    retry_after_s: int = 5

    @property
    def admit_limit(self) -> int | None:
        return None if self.memory_limit is None else int(self.memory_limit * self.admit_share)


@dataclass(eq=False)
class _Flight:
    key: Hashable
    fn: Callable[[], Any]
    token: CancelToken
    future: Future[Any] = field(default_factory=Future)
    waiters: int = 0


class Flights:
    """Single-flight computations on a fixed set of daemon worker threads."""

    def __init__(self, limits: WorkLimits, name: str = "riskmap-compute") -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}  # joinable: not cancelled, not done
        self._active: set[_Flight] = set()  # queued or running (cancelled ones included)
        self._queue: queue.SimpleQueue[_Flight | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, limits.max_running))
        ]
        for t in self._threads:
            t.start()

    # -- callers --------------------------------------------------------------------------

    def run(self, key: Hashable, fn: Callable[[], T]) -> T:
        """The result of ``fn`` for ``key``, computed once for every caller waiting for it.

        Raises :class:`~api.errors.Busy` when the queue is full or memory is short,
        :class:`RequestGone` when the caller's request left first, and whatever ``fn`` raised
        (:class:`geo._cancel.Cancelled` when it was stopped).
        """
        claim = current_claim()
        if claim is not None and claim.gone:
            raise RequestGone(claim.reason or "time limit")
        deadline = None if claim is None else claim.deadline
        with self._lock:
            if self._closed:
                raise Busy("the server is shutting down", self.limits.retry_after_s)
            fl = self._flights.get(key)
            if fl is None:
                fl = self._admit(key, fn, deadline)
            else:
                fl.token.extend(deadline)
            fl.waiters += 1
        return self._wait(fl, claim)

    def _admit(self, key: Hashable, fn: Callable[[], Any], deadline: float | None) -> _Flight:
        lim = self.limits
        if len(self._active) >= lim.max_running + lim.max_queued:
            raise Busy(
                f"too many computations at once ({lim.max_running} running, "
                f"{lim.max_queued} queued); try again later",
                lim.retry_after_s,
            )
        admit = lim.admit_limit
        if admit is not None:
            rss = rss_bytes()
            if rss > admit:
                raise Busy(
                    f"the server is short of memory ({rss / 2**20:.0f} MB in use); try again later",
                    lim.retry_after_s,
                )
        fl = _Flight(key, fn, CancelToken(deadline, lim.memory_limit))
        self._flights[key] = fl
        self._active.add(fl)
        self._queue.put(fl)
        return fl

    def _wait(self, fl: _Flight, claim: Claim | None) -> Any:
        wake = threading.Event()
        fl.future.add_done_callback(lambda _: wake.set())
        forget = claim.on_leave(wake.set) if claim is not None else (lambda: None)
        try:
            while not fl.future.done():
                timeout = None
                if claim is not None:
                    if claim.gone:
                        raise RequestGone(claim.reason or "time limit")
                    if claim.deadline is not None:
                        timeout = max(0.0, claim.deadline - time.monotonic()) + 0.01
                wake.wait(timeout)
            return fl.future.result()
        finally:
            forget()
            with self._lock:
                fl.waiters -= 1
                if fl.waiters == 0 and not fl.future.done():
                    fl.token.cancel("no request waits for it any more")
                    if self._flights.get(fl.key) is fl:
                        del self._flights[fl.key]

    def cancel_all(self, reason: str, close: bool = False) -> None:
        """Cancel every computation (and refuse new ones when ``close``)."""
        with self._lock:
            self._closed = self._closed or close
            for fl in self._active:
                fl.token.cancel(reason)
            self._flights.clear()

    @property
    def active(self) -> int:
        """Computations queued or running."""
        with self._lock:
            return len(self._active)

    # -- workers --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            fl = self._queue.get()
            if fl is None:
                return
            try:
                if fl.future.set_running_or_notify_cancel():
                    try:
                        with cancellable(fl.token):
                            result = fl.fn()
                    except BaseException as e:  # handed to every waiter
                        fl.future.set_exception(e)
                    else:
                        fl.future.set_result(result)
            finally:
                with self._lock:
                    self._active.discard(fl)
                    if self._flights.get(fl.key) is fl:
                        del self._flights[fl.key]
                trim_memory()  # after the flight is gone: a new call for its key computes anew

    def close(self) -> None:
        """Cancel everything and stop the workers (they are daemons: nothing waits)."""
        self.cancel_all("the server is shutting down", close=True)
        for _ in self._threads:
            self._queue.put(None)
