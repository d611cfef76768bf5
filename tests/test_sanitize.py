"""``sanitize``'s rule on the characters a terminal acts on, one class at a time (expectations by hand)."""

from __future__ import annotations

import pytest

from inspector._sanitize import sanitize

# Unicode's Bidi_Control property (PropList.txt): ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI_CONTROL = ["\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e"]
BIDI_CONTROL += ["\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("char", BIDI_CONTROL)
def test_every_bidi_control_shows_as_its_code_point(char: str) -> None:
    assert sanitize(f"a{char}b") == f"a\\u{ord(char):04x}b"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;t\x07", "\\x1b]0;t\\x07"),  # OSC 0 (title), ended by BEL
        ("\x9b2J", "\\x9b2J"),  # the 8-bit CSI
        ("a\x00b\x7f", "a\\x00b\\x7f"),  # NUL, DEL
        ("a\rb\x08c\x0bd\x0ce", "a\\x0db\\x08c\\x0bd\\x0ce"),  # the five rich drops from a Text
        ("line\nnext", "line\\x0anext"),
        ("é中 ok", "é中 ok"),  # printable text stays as it is
    ],
)
def test_controls_show_as_escapes(text: str, shown: str) -> None:
    assert sanitize(text) == shown


def test_keep_newlines_keeps_only_the_newline() -> None:
    assert sanitize("a\nb\r\n", keep_newlines=True) == "a\nb\\x0d\n"
