"""history's pure parts: which listed versions belong to a tag, and when writers alternate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from inspector.cache.coverage import PlatformCoverage, StagePlatform
from inspector.cache.history import HistoryEntry, ListedVersion, candidates, detect_alternation
from inspector.cache.report import CacheReport
from inspector.oci.digest import sha256_digest

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def version(n: int, *tags: str, minutes: int | None = None) -> ListedVersion:
    pushed = T0 + timedelta(minutes=minutes if minutes is not None else n)
    return ListedVersion(sha256_digest(str(n)), tags, pushed)


def test_candidates_are_the_tagged_version_and_older_untagged_ones_newest_first() -> None:
    listed = [
        version(1),  # untagged, older: may have held the tag
        version(2, "other"),  # another cache's tag: never ours
        version(3),
        version(4, "main", "latest"),  # the tag now
        version(5),  # untagged and newer than the tag's version: cannot have held it
    ]
    got = candidates(list(reversed(listed)), "main")
    assert [v.digest for v in got] == [listed[3].digest, listed[2].digest, listed[0].digest]
    assert candidates(listed, "gone") == []


def test_candidates_without_times_sort_last_and_equal_times_keep_the_api_order() -> None:
    a, b = version(1, minutes=0), version(2, minutes=0)
    untimed = ListedVersion(sha256_digest("x"), (), None)
    tagged = version(3, "main", minutes=5)
    got = candidates([untimed, tagged, b, a], "main")
    assert got == [tagged, b, a, untimed]


def entry(*platforms: str | None) -> HistoryEntry:
    """An entry whose stages are proven these platforms (None: one stage of unknown platform)."""
    coverage = PlatformCoverage(tuple(StagePlatform(i, p) for i, p in enumerate(platforms)))
    return HistoryEntry(version(0), cast(CacheReport, None), coverage, None)


AMD, ARM = "linux/amd64", "linux/arm64"


def test_alternation_needs_a_writer_to_come_back() -> None:
    assert detect_alternation([entry(ARM), entry(AMD), entry(ARM), entry(AMD)]) is not None
    found = detect_alternation([entry(AMD), entry(ARM), entry(AMD)])
    assert found is not None and found.writers == (AMD, ARM) and found.switches == 2
    assert found.sentence == (
        "two writers alternate on this tag: linux/amd64 and linux/arm64 — use separate cache refs per platform"
    )
    # One switch is a build that moved platform, not two writers.
    assert detect_alternation([entry(AMD), entry(AMD), entry(ARM), entry(ARM)]) is None
    assert detect_alternation([entry(AMD), entry(AMD)]) is None
    assert detect_alternation([]) is None


def test_unknown_versions_are_skipped_and_multi_platform_writers_are_their_own() -> None:
    # amd64, (unknown), amd64: the unknown one proves nothing, so nothing alternates.
    assert detect_alternation([entry(AMD), entry(None), entry(AMD)]) is None
    # amd64, unknown, arm64, amd64: the unknown one is skipped, amd64 comes back after arm64.
    assert detect_alternation([entry(AMD), entry(None), entry(ARM), entry(AMD)]) is not None
    # A multi-platform export (both) and an amd64-only job taking turns are two writers as well.
    found = detect_alternation([entry(AMD, ARM), entry(AMD), entry(ARM, AMD)])
    assert found is not None and found.writers == (f"{AMD}+{ARM}", AMD)
    three = detect_alternation([entry(AMD), entry(ARM), entry("linux/s390x"), entry(AMD)])
    assert three is not None
    assert three.sentence.startswith(
        "3 writers alternate on this tag: linux/amd64, linux/arm64 and linux/s390x"
    )
