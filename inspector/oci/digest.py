"""Content digests: parsed once at the edge, then passed around as ``Digest``."""

from __future__ import annotations

import hashlib
import re

from inspector.errors import InvalidReference

__all__ = ["Digest", "sha256_digest"]

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"(sha256|sha512):([a-f0-9]+)")


class Digest(str):
    """A validated ``algorithm:hex`` string (sha256 or sha512, lowercase hex).

    A ``str`` subclass so it serialises and compares like the wire value, while
    the type checker keeps unchecked strings out of digest positions.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        # fullmatch: a "$"-anchored match also accepts a trailing newline.
        match = _DIGEST_RE.fullmatch(value) if isinstance(value, str) else None
        if match is None or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
            shown = value if isinstance(value, str) else type(value).__name__
            raise InvalidReference(f"invalid digest {shown[:100]!r}: expected sha256:<64 lowercase hex>")
        return super().__new__(cls, value)

    @property
    def algorithm(self) -> str:
        return self.split(":", 1)[0]

    @property
    def hex(self) -> str:
        return self.split(":", 1)[1]

    @property
    def short(self) -> str:
        """``sha256:`` plus the first 12 hex digits, for people to read."""
        return f"{self.algorithm}:{self.hex[:12]}"

    def matches(self, data: bytes) -> bool:
        """True when ``data`` hashes to this digest."""
        return hashlib.new(self.algorithm, data).hexdigest() == self.hex


def sha256_digest(data: bytes | str) -> Digest:
    """The sha256 digest of bytes (str is hashed as UTF-8)."""
    if isinstance(data, str):
        data = data.encode()
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())
