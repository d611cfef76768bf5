"""The adaptive concurrency controller, driven with synthetic latencies and statuses (no clock, no sleeps).

Expected limits follow from the rules in ``inspector/registry/concurrency.py``'s docstring, worked by hand:
a round is ``limit`` answers; slow start doubles after a clean round until the first back-off, then +1 per
clean round; a round is dirty when its median exceeds 2 x the lowest round median + 5 ms.
"""

from __future__ import annotations

import threading

import pytest

from inspector.registry.concurrency import (
    DOCKER_HUB_CEILING,
    HTTP1_CEILING,
    HTTP2_CEILING,
    Concurrency,
    ceiling_for,
)

MS = 0.001


def clean_round(c: Concurrency, latency: float = 10 * MS) -> None:
    for _ in range(c.limit):
        c.answered(latency, 200)


def test_slow_start_doubles_per_clean_round_up_to_the_http2_ceiling() -> None:
    c = Concurrency(8, adaptive=True)
    c.learn("ghcr.io", "HTTP/2")
    seen = [c.limit]
    for _ in range(4):
        clean_round(c)
        seen.append(c.limit)
    # 8 answers at 10 ms: clean, 8 -> 16; 16 -> 32; 32 -> 64; 64 is the ceiling and stays.
    assert seen == [8, 16, 32, 64, 64]
    assert c.reached == HTTP2_CEILING == 64


def test_http1_caps_at_its_ceiling_and_docker_hub_does_not_grow() -> None:
    c = Concurrency(8, adaptive=True)
    c.learn("registry.example", "HTTP/1.1")
    for _ in range(5):
        clean_round(c)
    assert c.limit == HTTP1_CEILING == 16  # 8 -> 16, then held at the HTTP/1.1 ceiling

    hub = Concurrency(8, adaptive=True)
    hub.learn("registry-1.docker.io", "HTTP/2")  # Docker Hub speaks HTTP/2, but rate-limits pulls
    for _ in range(5):
        clean_round(hub)
    assert hub.limit == DOCKER_HUB_CEILING == 8


def test_the_lowest_ceiling_of_the_registries_talked_to_wins() -> None:
    c = Concurrency(8, adaptive=True)
    c.learn("ghcr.io", "HTTP/2")
    clean_round(c)
    clean_round(c)
    assert c.limit == 32
    c.learn("127.0.0.1:5000", "HTTP/1.1")  # a copy to a plain-HTTP registry: 16 connections at most
    assert (c.ceiling, c.limit) == (16, 16)


@pytest.mark.parametrize(
    ("host", "version", "ceiling"),
    [
        ("ghcr.io", "HTTP/2", 64),
        ("ghcr.io", "HTTP/1.1", 16),
        ("docker.io", "HTTP/2", 8),
        ("index.docker.io", "HTTP/1.1", 8),
        ("REGISTRY-1.DOCKER.IO:443", "HTTP/2", 8),
    ],
)
def test_ceiling_per_registry_and_protocol(host: str, version: str, ceiling: int) -> None:
    assert ceiling_for(host, version) == ceiling


def test_a_429_halves_at_once_then_growth_is_additive() -> None:
    c = Concurrency(8, adaptive=True)
    clean_round(c)
    clean_round(c)
    assert c.limit == 32
    c.answered(10 * MS, 429)
    assert c.limit == 16  # halved on the first 429, mid-round
    clean_round(c)
    assert c.limit == 17  # congestion avoidance: +1 per clean round, no more doubling
    clean_round(c)
    assert c.limit == 18
    assert c.backoffs == 1


def test_a_burst_of_429s_from_one_round_halves_once() -> None:
    c = Concurrency(8, adaptive=True)
    clean_round(c)
    clean_round(c)
    assert c.limit == 32
    # The 32 requests in flight when the first 429 came may all answer 429: one halving for them.
    for _ in range(32):
        c.answered(10 * MS, 429)
    assert c.limit == 16 and c.backoffs == 1
    c.answered(10 * MS, 503)  # the 33rd answer: a new signal, halves again
    assert c.limit == 8 and c.backoffs == 2


def test_throttling_can_go_down_to_one_and_no_lower() -> None:
    c = Concurrency(2, adaptive=True)
    c.answered(10 * MS, 503)
    assert c.limit == 1
    c.answered(10 * MS, 429)  # one answer since the last halving, which covered a limit of 2: held
    c.answered(10 * MS, 429)
    assert c.limit == 1


def test_rising_latency_halves_but_never_below_the_start() -> None:
    c = Concurrency(8, adaptive=True)
    clean_round(c, 10 * MS)  # baseline 10 ms; 8 -> 16
    clean_round(c, 24 * MS)  # median 24 ms <= 2 x 10 + 5 = 25 ms: clean, 16 -> 32
    assert c.limit == 32
    clean_round(c, 26 * MS)  # 26 ms > 25 ms: dirty, 32 -> 16
    assert c.limit == 16
    clean_round(c, 30 * MS)  # still dirty: 16 -> 8
    clean_round(c, 40 * MS)  # dirty again, but 8 is where it started: latency alone goes no lower
    assert c.limit == 8
    assert c.backoffs == 2
    clean_round(c, 10 * MS)  # back to the baseline: additive growth (slow start ended at the back-off)
    assert c.limit == 9


def test_the_round_median_ignores_one_slow_answer() -> None:
    c = Concurrency(8, adaptive=True)
    clean_round(c)
    for latency in [10 * MS] * 15 + [2.0]:  # one token fetch inside a request: 2 s
        c.answered(latency, 200)
    assert c.limit == 32


def test_a_timeout_backs_off_like_a_429() -> None:
    c = Concurrency(8, adaptive=True)
    clean_round(c)
    c.timed_out()
    assert c.limit == 8 and c.backoffs == 1


def test_a_fixed_limit_never_moves() -> None:
    c = Concurrency(3)
    for _ in range(10):
        clean_round(c)
    c.answered(10 * MS, 429)
    c.timed_out()
    c.learn("ghcr.io", "HTTP/2")
    assert (c.limit, c.workers, c.ceiling) == (3, 3, 3)
    assert c.summary() == "concurrency: fixed at 3; HTTP/2"


def test_adaptive_workers_cover_the_ceiling_and_the_summary_says_what_happened() -> None:
    c = Concurrency(8, adaptive=True)
    assert c.workers == 64  # before any answer: the gate, not the thread pool, is the limit
    c.learn("ghcr.io", "HTTP/2")
    clean_round(c)
    c.answered(10 * MS, 429)
    assert c.summary() == (
        "concurrency: adaptive, started at 8, reached 16 (ceiling 64), now 8; 1 back-off(s); HTTP/2"
    )


def test_the_gate_holds_requests_at_the_limit_and_lets_them_in_when_it_grows() -> None:
    c = Concurrency(1, adaptive=True)
    c.learn("ghcr.io", "HTTP/2")
    entered = threading.Event()
    release = threading.Event()

    def second() -> None:
        with c.slot():
            entered.set()
            release.wait(10)

    with c.slot():
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not entered.wait(0.2)  # the only place is taken
        c.answered(10 * MS, 200)  # a clean round of one: 1 -> 2, the waiter gets in
        assert entered.wait(10)
    release.set()
    waiter.join(10)
    assert not waiter.is_alive()
