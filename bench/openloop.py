"""An open-loop HTTP load generator: requests leave at fixed times, whatever the server does.

A closed-loop client (``wrk``) sends the next request when the previous one has answered, so
a slow server is offered less load and its slow answers hide the requests that would have
waited behind them ("coordinated omission"). Here request ``i`` is scheduled at
``start + i / rate`` and its latency runs from that scheduled time to the end of its answer:
time spent queued behind a slow answer (waiting for a free connection) counts. Requests that
have not answered ``timeout`` seconds after the offered period count as failures, with an
infinite latency (so they weigh on the percentiles, never vanish from them).

    python -m bench.openloop http://127.0.0.1:8000/healthz --rate 1000 --duration 10

Connections are HTTP/1.1 keep-alive (``h11``), opened as needed up to ``max_connections``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11
import numpy as np


@dataclass
class OpenLoopResult:
    """One run: per request its scheduled time (``time.perf_counter`` seconds), latency from
    that time (``inf``: no answer), HTTP status (0: no answer) and the value of the header
    asked for (``None`` when absent)."""

    rate: float
    duration: float
    scheduled: np.ndarray = field(repr=False)
    latency: np.ndarray = field(repr=False)
    status: np.ndarray = field(repr=False)
    header: list[str | None] = field(repr=False)
    connections: int = 0
    lag: np.ndarray | None = field(default=None, repr=False)  # departure - scheduled time

    @property
    def sent(self) -> int:
        return len(self.scheduled)

    @property
    def ok(self) -> int:
        return int(np.count_nonzero((self.status >= 200) & (self.status < 300)))

    @property
    def failed(self) -> int:
        """Requests without an answer, or with a status other than 2xx."""
        return self.sent - self.ok

    def percentile_ms(self, q: float, mask: np.ndarray | None = None) -> float:
        lat = self.latency if mask is None else self.latency[mask]
        if len(lat) == 0:
            return float("nan")
        return float(np.percentile(lat, q, method="higher")) * 1000

    def achieved(self) -> float:
        """Answers (2xx) per second over the time from the first scheduled request to the
        last answer."""
        done = np.isfinite(self.latency)
        if not done.any():
            return 0.0
        end = float(np.max(self.scheduled[done] + self.latency[done]))
        return self.ok / max(end - float(self.scheduled[0]), 1e-9)

    def summary(self) -> dict[str, float | int]:
        return {
            "offered_per_s": self.rate,
            "achieved_per_s": round(self.achieved(), 1),
            "sent": self.sent,
            "failed": self.failed,
            "p50_ms": round(self.percentile_ms(50), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "max_ms": round(self.percentile_ms(100), 2),
            "connections": self.connections,
            # how late the client itself let requests leave (its event loop busy): when this
            # is large the generator, not the server, limits the figures
            "client_lag_p99_ms": round(float(np.percentile(self.lag, 99)) * 1000, 2)
            if self.lag is not None and len(self.lag)
            else float("nan"),
        }


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, header: bytes | None) -> None:
        self.h11 = h11.Connection(h11.CLIENT)
        self.header = header
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, str | None]] | None = None
        self.status = 0
        self.value: str | None = None
        self.alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def request(self, host: str, target: str) -> asyncio.Future[tuple[int, str | None]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.status, self.value = 0, None
        data = self.h11.send(
            h11.Request(method="GET", target=target, headers=[("Host", host), ("Accept", "*/*")])
        )
        data += self.h11.send(h11.EndOfMessage())
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)
        while True:
            try:
                ev = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                self._fail(e)
                return
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                break
            if isinstance(ev, h11.Response):
                self.status = ev.status_code
                if self.header is not None:
                    for k, v in ev.headers:
                        if k == self.header:
                            self.value = v.decode()
            elif isinstance(ev, h11.EndOfMessage):
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result((self.status, self.value))
                if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                    self.h11.start_next_cycle()
                else:
                    self.alive = False
                break

    def _fail(self, e: Exception) -> None:
        self.alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(e)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_loop(
    url: str,
    target: Callable[[int], str],
    rate: float,
    duration: float,
    *,
    header: str | None = None,
    max_connections: int = 256,
    timeout: float = 10.0,
    stop: Callable[[], bool] | None = None,
) -> OpenLoopResult:
    """Offer ``rate`` GET requests a second for ``duration`` seconds to the server of ``url``
    (``http://host:port``); ``target(i)`` is the path and query of request ``i``; ``header``:
    a response header to keep per request (e.g. ``x-data-version``); ``stop``: asked between
    departures, ends the offered period early when it answers true (the result then holds the
    requests sent so far)."""
    parts = urlsplit(url)
    host_port = parts.netloc
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    n = max(1, int(rate * duration))
    loop = asyncio.get_running_loop()
    scheduled = np.zeros(n)
    latency = np.full(n, np.inf)
    status = np.zeros(n, dtype=np.int32)
    values: list[str | None] = [None] * n
    lag = np.zeros(n)
    hdr = header.lower().encode() if header else None
    idle: list[_Conn] = []
    opened = 0
    free = asyncio.Condition()
    all_conns: list[_Conn] = []

    async def get_conn() -> _Conn:
        nonlocal opened
        while True:
            while idle:
                c = idle.pop()
                if c.alive:
                    return c
                opened -= 1
            if opened < max_connections:
                opened += 1
                try:
                    _, c = await loop.create_connection(lambda: _Conn(hdr), host, port)
                except OSError:
                    opened -= 1
                    raise
                all_conns.append(c)
                return c
            async with free:
                await free.wait()

    async def release(c: _Conn) -> None:
        nonlocal opened
        if c.alive:
            idle.append(c)
        else:
            opened -= 1
            c.close()
        async with free:
            free.notify()

    async def one(i: int, at: float) -> None:
        lag[i] = time.perf_counter() - at
        try:
            c = await get_conn()
        except OSError:
            return
        try:
            st, val = await c.request(host_port, target(i))
        except (ConnectionError, h11.ProtocolError):
            c.alive = False
            await release(c)
            return
        latency[i] = time.perf_counter() - at
        status[i], values[i] = st, val
        await release(c)

    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.05
    i = 0
    while i < n:
        if stop is not None and stop():
            break
        now = time.perf_counter()
        due = start + i / rate
        if due > now:
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        # every request whose time has come leaves now, timed from its scheduled time
        while i < n and start + i / rate <= now:
            at = start + i / rate
            scheduled[i] = at
            t = asyncio.ensure_future(one(i, at))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            t.cancel()
    for c in all_conns:
        c.close()
    return OpenLoopResult(
        rate=rate,
        duration=i / rate,
        scheduled=scheduled[:i],
        latency=latency[:i],
        status=status[:i],
        header=values[:i],
        lag=lag[:i],
        connections=len(all_conns),
    )


def run(
    url: str,
    target: Callable[[int], str],
    rate: float,
    duration: float,
    **options: object,
) -> OpenLoopResult:
    """:func:`open_loop` in an event loop of its own (callable from a thread)."""
    return asyncio.run(open_loop(url, target, rate, duration, **options))  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("url", help="http://host:port/path?query (the same request each time)")
    ap.add_argument("--rate", type=float, default=1000.0, help="requests offered a second")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds")
    args = ap.parse_args()
    parts = urlsplit(args.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    res = run(f"{parts.scheme}://{parts.netloc}", lambda _i: path or "/", args.rate, args.duration)
    print(res.summary())


if __name__ == "__main__":
    main()
