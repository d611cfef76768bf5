"""``-o tsv``: tab-separated rows under a header row, for ``sort``, ``cut`` and ``awk``.

A field is ``sanitize``d, so a tab, newline or control character from a registry (a tag, a reason) is shown
as an escape (``\\x09``) and never splits a field or a row; ``None`` is the empty field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from inspector._sanitize import sanitize

__all__ = ["tsv"]


def _field(value: object) -> str:
    return "" if value is None else sanitize(str(value))


def tsv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The header row, then one line per row; every line ends in a newline."""
    return "".join("\t".join(_field(value) for value in row) + "\n" for row in [header, *rows])
