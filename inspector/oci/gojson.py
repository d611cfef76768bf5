"""JSON decoding with Go ``encoding/json`` semantics where they matter.

BuildKit and registries decode with Go: struct field names match keys
case-insensitively (the last matching key wins), unknown keys are ignored,
``null`` leaves a field at its zero value, numbers must be integers where the
field is an ``int``. Map-typed fields (annotations) keep their keys exactly.
Every failure here is an ``InvalidContent`` naming where in the document it is.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from inspector.errors import InvalidContent, InvalidReference
from inspector.oci.digest import Digest

__all__ = [
    "Obj",
    "Timestamp",
    "as_digest",
    "as_int",
    "as_list",
    "as_str",
    "as_str_map",
    "encode",
    "fields",
    "load",
    "parse_go_time",
]

_INT64 = 2**63


class Obj(list[tuple[str, Any]]):
    """A decoded JSON object, kept as its ordered (key, value) pairs."""


def load(raw: bytes, what: str) -> Any:
    """Decode UTF-8 JSON bytes; objects become ``Obj``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidContent(f"{what} is not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=Obj, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidContent(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidContent(f"{what} is nested too deeply to be a manifest or cache config") from None
    except ValueError as exc:
        raise InvalidContent(f"{what} is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def fields(value: Any, names: tuple[str, ...], where: str) -> dict[str, Any]:
    """Pick struct fields from an object the way Go does (case-insensitive, last key wins)."""
    if value is None:
        return {}
    if not isinstance(value, Obj):
        raise InvalidContent(f"{where}: expected an object, found {_kind(value)}")
    folded = {name.casefold(): name for name in names}
    out: dict[str, Any] = {}
    for key, item in value:
        name = folded.get(key.casefold())
        if name is not None:
            out[name] = item
    return out


def as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or isinstance(value, Obj):
        raise InvalidContent(f"{where}: expected an array, found {_kind(value)}")
    return value


def as_str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidContent(f"{where}: expected a string, found {_kind(value)}")
    return value


def as_int(value: Any, where: str, *, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidContent(f"{where}: expected an integer, found {_kind(value)}")
    if not -_INT64 <= value < _INT64:
        raise InvalidContent(f"{where}: integer {value} out of range")
    return value


def as_digest(value: Any, where: str) -> Digest:
    text = as_str(value, where)
    if not text:
        raise InvalidContent(f"{where}: missing digest")
    try:
        return Digest(text)
    except InvalidReference:
        raise InvalidContent(f"{where}: invalid digest {text[:80]!r}") from None


def as_str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Obj):
        raise InvalidContent(f"{where}: expected an object, found {_kind(value)}")
    out: dict[str, str] = {}
    for key, item in value:
        out[key] = as_str(item, f"{where}[{key!r}]")
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Obj):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return type(value).__name__


# Go's time.Time JSON form is RFC 3339 with up to 9 fractional digits.
_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A time as Go wrote it: UTC instant to the nanosecond, plus the original text."""

    epoch_ns: int
    text: str = field(compare=False)

    @property
    def datetime(self) -> datetime:
        """The instant in UTC (microsecond precision)."""
        return _EPOCH + timedelta(microseconds=self.epoch_ns // 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_go_time(text: str, where: str) -> Timestamp:
    """Parse RFC 3339 (nanosecond precision, any offset) the way Go's ``time.Time`` does."""
    match = _TIME_RE.match(text)
    if match is None:
        raise InvalidContent(f"{where}: {text[:60]!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    frac = (match.group(7) or "").ljust(9, "0")
    nanos = int(frac)
    if match.group(8):
        tz: timezone = UTC
    else:
        sign = 1 if match.group(9) == "+" else -1
        offset_h, offset_m = int(match.group(10)), int(match.group(11))
        if offset_h > 23 or offset_m > 59:
            raise InvalidContent(f"{where}: {text[:60]!r} has an invalid UTC offset")
        tz = timezone(sign * timedelta(hours=offset_h, minutes=offset_m))
    try:
        when = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as exc:
        raise InvalidContent(f"{where}: {text[:60]!r} is not a valid time ({exc})") from None
    seconds = (when - _EPOCH) // timedelta(seconds=1)
    return Timestamp(seconds * 1_000_000_000 + nanos, text)


def encode(value: Any) -> bytes:
    """Go ``encoding/json`` ``Marshal`` bytes of a value whose dicts are already in Go struct field order.

    Compact; strings as UTF-8 with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped (Go's HTML-safe default,
    ``encode.go`` ``appendString``), other control characters as Go >= 1.22 writes them (``\\b``, ``\\f``, ``\\n``,
    ``\\r``, ``\\t``, else ``\\u00XX``); ``bytes`` as standard padded base64 (how Go encodes ``[]byte``).
    Callers drop ``omitempty`` fields themselves: a dict holds exactly the keys Go would write.
    """
    text = json.dumps(_go_value(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)  # these occur only inside strings in JSON text
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def _go_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (undecodable bytes): Go writes U+FFFD for invalid UTF-8
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: _go_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_go_value(item) for item in value]
    return value
