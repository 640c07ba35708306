"""Cooperative cancellation of long computations.

The zone engine calls :func:`checkpoint` at its natural loop points (per level, per day of a
disc sweep, per zone part...). Outside a :func:`cancellable` block a checkpoint does nothing;
inside one it raises :class:`Cancelled` when the block's :class:`CancelToken` was cancelled,
its deadline has passed, or the process's resident memory (plus what the caller is about to
allocate) would pass the token's memory limit. Checkpoints have no other effect: results are
the same with or without a token.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from functools import lru_cache

from riskmap.geo._errors import RiskmapError

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Cancelled(RiskmapError):
    """A computation stopped at a checkpoint (``reason``: cancelled, deadline or memory)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def rss_bytes() -> int:
    """Resident memory of this process (from /proc/self/statm; 0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _ = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to hand back
        return None
    return libc


def trim_memory() -> None:
    """Hand the memory freed by a computation back to the system (glibc keeps freed heap
    memory for reuse: without this the resident memory after one large computation stays
    at its peak, and the memory guard then refuses every new computation)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class CancelToken:
    """Cancellation state of one computation: cancelled by its owner, a deadline (monotonic
    seconds) and a memory limit (bytes of resident memory of the whole process)."""

    def __init__(self, deadline: float | None = None, memory_limit: int | None = None) -> None:
        self.deadline = deadline
        self.memory_limit = memory_limit
        self._reason: str | None = None
        self._lock = threading.Lock()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason

    @property
    def cancelled(self) -> bool:
        return self._reason is not None

    def extend(self, deadline: float | None) -> None:
        """Push the deadline to ``deadline`` if later (None: no deadline any more)."""
        with self._lock:
            if self.deadline is not None and (deadline is None or deadline > self.deadline):
                self.deadline = deadline

    def check(self, need_bytes: int = 0) -> None:
        """Raise :class:`Cancelled` if the computation must stop."""
        if self._reason is not None:
            raise Cancelled("cancelled", f"the computation was cancelled: {self._reason}")
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.cancel("deadline")
            raise Cancelled("deadline", "the computation passed its time limit")
        if self.memory_limit is not None:
            rss = rss_bytes()
            if rss + need_bytes > self.memory_limit:
                self.cancel("memory")
                raise Cancelled(
                    "memory",
                    f"the server is short of memory ({rss / 2**20:.0f} MB in use, "
                    f"{need_bytes / 2**20:.0f} MB more needed, limit "
                    f"{self.memory_limit / 2**20:.0f} MB)",
                )


_token: ContextVar[CancelToken | None] = ContextVar("riskmap_cancel_token", default=None)


def checkpoint(need_bytes: int = 0) -> None:
    """Stop here if the current computation was cancelled, timed out or would use too much
    memory (``need_bytes``: what the caller is about to allocate)."""
    token = _token.get()
    if token is not None:
        token.check(need_bytes)


@contextlib.contextmanager
def cancellable(token: CancelToken) -> Iterator[CancelToken]:
    """Run the block under ``token``: its checkpoints obey it."""
    reset = _token.set(token)
    try:
        token.check()
        yield token
    finally:
        _token.reset(reset)
