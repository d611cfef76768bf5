"""Text from outside (registry answers, images, Dockerfiles, credential helpers) made safe to show.

``sanitize`` is the one function every renderer uses: terminal text (the rich console renders every
segment through it; show's and diff's renderers also pass outside text through it before it becomes a rich
``Text``, which would drop BEL, BS, VT, FF and CR unseen), error and log lines, JUnit XML and, under
``markdown_text``, the Markdown written to ``$GITHUB_STEP_SUMMARY``. It turns every character that could act instead of being read into a visible
escape (``\\x1b``, ``\\u202e``): C0 controls (ESC starts CSI/OSC sequences: title, screen clear, OSC 52
clipboard writes), DEL, C1 controls (U+0080–U+009F: 8-bit CSI and OSC), bidirectional controls
(Unicode's Bidi_Control property, PropList.txt: U+061C, U+200E/F, U+202A–E, U+2066–9: text shown
reordered), lone surrogates and U+FFFE/U+FFFF (not XML 1.0 characters). What is left is printable and
valid in XML 1.0.
"""

from __future__ import annotations

import re

__all__ = ["markdown_text", "sanitize"]

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Markdown and HTML syntax (emphasis, code, links, images, tables, raw HTML, entities, math) and what starts
# an autolink (":" of a scheme, "@" of an address): written as character references, they render as text.
# A block marker counts only at the start ("-", "#", "1."): the text is always placed inside a line.
_MARKDOWN = frozenset("\\`*_{}[]<>!|~&:@#$")
_LINE_START = frozenset("-+=>.")
_ORDERED_ITEM = re.compile(r"[0-9]{1,9}[.)]")


def _unsafe(char: str) -> bool:
    code = ord(char)
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or char in _BIDI
        or 0xD800 <= code <= 0xDFFF
        or code in (0xFFFE, 0xFFFF)
    )


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def sanitize(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, escape-introducing, bidi-override or non-XML character shown as an
    escape; ``keep_newlines`` leaves ``\\n`` alone (multi-line blocks), otherwise the result is one line."""
    if text.isprintable() and not any(char in _BIDI for char in text):
        return text  # the common case, without a per-character walk
    return "".join(
        _escape(char) if _unsafe(char) and not (keep_newlines and char == "\n") else char for char in text
    )


def markdown_text(text: str) -> str:
    """``sanitize``d text that Markdown (GitHub's, tables included) renders as itself: no emphasis, code,
    link, image, HTML, autolink or table cell break can come from it. Not for use inside a code span."""
    out: list[str] = []
    clean = sanitize(text)
    item = _ORDERED_ITEM.match(clean)
    marker = item.end() - 1 if item is not None else -1  # the "." of "1." would start an ordered list
    for index, char in enumerate(clean):
        if char in _MARKDOWN or index == marker or (index == 0 and char in _LINE_START):
            out.append(f"&#{ord(char)};")
        elif char == "." and "".join(out[-3:]).lower() == "www":  # GFM's www. autolink
            out.append("&#46;")
        else:
            out.append(char)
    return "".join(out)
