"""How many requests one client keeps in flight: a fixed number (``-j N``), or adaptive.

Adaptive is AIMD on a latency baseline, as TCP's congestion control is on loss: start at the default (8), double
after each clean round (slow start) until the first back-off, then add one per clean round; halve at once on a
429 or 503 (at most once per round: the requests already in flight answer 429 too), and halve on rising latency.
A round is as many answers as the current limit; it is clean when its median latency stays within
``LATENCY_TOLERANCE`` x the lowest round median seen so far plus ``LATENCY_SLACK`` (loopback noise). Latency
alone never brings the limit below where it started: answers that slow down as more requests wait for the same
CPU or link do not make fewer requests faster than today's fixed default; a 429/503 or a timeout can bring it
down to one.

The ceiling depends on the transport: on HTTP/2 one connection carries the streams (``HTTP2_CEILING``; httpcore
itself never opens more streams than the server's SETTINGS_MAX_CONCURRENT_STREAMS, capped at 100, so requests
beyond it would wait for a stream, which reads as rising latency); on HTTP/1.1 every request in flight is a TCP
connection (``HTTP1_CEILING``); Docker Hub rate-limits pulls (``DOCKER_HUB_CEILING``, the default: no growth).
A client that talks to several registries keeps the lowest ceiling among them.

The controller is deterministic (no clock of its own, no sleeps): ``answered`` takes the latency the caller
measured, so tests drive it with synthetic latencies and 429s.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from inspector.oci.reference import DOCKER_HUB, DOCKER_HUB_API

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DOCKER_HUB_CEILING",
    "HTTP1_CEILING",
    "HTTP2_CEILING",
    "LATENCY_SLACK",
    "LATENCY_TOLERANCE",
    "Concurrency",
    "ceiling_for",
]

DEFAULT_CONCURRENCY = 8
HTTP2_CEILING = 64
HTTP1_CEILING = 16
DOCKER_HUB_CEILING = DEFAULT_CONCURRENCY
LATENCY_TOLERANCE = 2.0
LATENCY_SLACK = 0.005  # seconds: below this a rise is noise (sub-millisecond loopback answers)
_THROTTLED = frozenset({429, 503})
_DOCKER_HUB_HOSTS = frozenset({DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"})


def ceiling_for(host: str, http_version: str) -> int:
    """The most requests in flight worth trying against ``host`` over ``http_version`` ("HTTP/2", "HTTP/1.1")."""
    if host.lower().split(":")[0] in _DOCKER_HUB_HOSTS:
        return DOCKER_HUB_CEILING
    return HTTP2_CEILING if http_version == "HTTP/2" else HTTP1_CEILING


class Concurrency:
    """The limit on requests in flight and the gate that enforces it; safe to share between threads.

    ``adaptive=False``: the limit stays at ``start`` (``-j N``). Otherwise it moves between 1 and the ceiling
    (``learn`` lowers it per registry and protocol; before the first answer it is ``HTTP2_CEILING``).
    """

    def __init__(self, start: int = DEFAULT_CONCURRENCY, *, adaptive: bool = False) -> None:
        if start < 1:
            raise ValueError("concurrency must be at least 1")
        self.start = start
        self.adaptive = adaptive
        self.limit = start
        self.ceiling = max(start, HTTP2_CEILING) if adaptive else start
        self.reached = start
        self.backoffs = 0
        self.answers = 0
        self.protocols: set[str] = set()
        self._slow_start = True
        self._baseline: float | None = None
        self._round: list[float] = []
        self._hold_throttle = 0  # answers to see before another 429 may halve again
        self._learned: set[tuple[str, str]] = set()
        self._in_flight = 0
        self._changed = threading.Condition()

    # -- the gate ---------------------------------------------------------------------------------

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` places for the block's duration (waits while all are taken)."""
        with self._changed:
            while self._in_flight >= self.limit:
                self._changed.wait()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify()

    @property
    def workers(self) -> int:
        """Threads a fan-out needs so that the gate, not the pool, is the limit."""
        return self.ceiling if self.adaptive else self.limit

    # -- the controller ---------------------------------------------------------------------------

    def learn(self, host: str, http_version: str) -> None:
        """An answer came from ``host`` over ``http_version``: the ceiling is at most ``ceiling_for`` them."""
        key = (host, http_version)
        if key in self._learned:
            return
        with self._changed:
            self._learned.add(key)
            self.protocols.add(http_version)
            if self.adaptive:
                self.ceiling = min(self.ceiling, max(self.start, ceiling_for(host, http_version)))
                self._set(min(self.limit, self.ceiling))

    def answered(self, latency: float, status: int) -> None:
        """One answer, ``latency`` seconds after its request took its place; 429/503 halve the limit."""
        with self._changed:
            self.answers += 1
            if not self.adaptive:
                return
            if self._hold_throttle:
                self._hold_throttle -= 1
            if status in _THROTTLED:
                self._throttle()
                return
            self._round.append(latency)
            if len(self._round) >= self.limit:
                self._end_round()

    def timed_out(self) -> None:
        """A request got no answer within its timeout: as a 429, the registry (or the path to it) is full."""
        with self._changed:
            if self.adaptive:
                self._throttle()

    def summary(self) -> str:
        """One line for ``-v``: where the limit went and why."""
        protocols = ", ".join(sorted(self.protocols)) or "no answers"
        if not self.adaptive:
            return f"concurrency: fixed at {self.start}; {protocols}"
        return (
            f"concurrency: adaptive, started at {self.start}, reached {self.reached} "
            f"(ceiling {self.ceiling}), now {self.limit}; {self.backoffs} back-off(s); {protocols}"
        )

    def _throttle(self) -> None:
        if self._hold_throttle:
            return
        self._hold_throttle = self.limit  # the requests in flight now may all answer 429 as well
        self._slow_start = False
        self.backoffs += 1
        self._set(max(1, self.limit // 2))

    def _end_round(self) -> None:
        ordered = sorted(self._round)
        median = ordered[len(ordered) // 2]
        self._round.clear()
        if self._baseline is None or median < self._baseline:
            self._baseline = median
        if median > self._baseline * LATENCY_TOLERANCE + LATENCY_SLACK:
            self._slow_start = False
            if self.limit > self.start:
                self.backoffs += 1
                self._set(max(self.start, self.limit // 2))
            return
        grown = self.limit * 2 if self._slow_start else self.limit + 1
        self._set(min(self.ceiling, grown))

    def _set(self, limit: int) -> None:
        """Change the limit (caller holds the lock); a new round starts, waiting requests re-check."""
        if limit != self.limit:
            self._round.clear()
        self.limit = limit
        self.reached = max(self.reached, limit)
        self._changed.notify_all()
