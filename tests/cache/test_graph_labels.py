"""`show --graph` labels carry names from images and Dockerfiles: each syntax's escaping, against hostile text.

The expectations are the two languages' own lexers, written out here from their sources:

* DOT (Graphviz ``lib/cgraph/scan.l``): a quoted string runs to the first ``"`` that is not preceded by a
  backslash; ``\\"`` is the only escape the lexer knows, every other character (a newline included) is
  kept. In a label (an escString), ``\\\\`` then shows one backslash and ``\\n`` breaks the line.
* Mermaid (flowchart grammar, ``flow.jison``): a quoted label is ``"`` then anything but ``"`` then ``"``;
  a newline ends the statement; a label opening with a backtick is a Markdown string; ``#…;`` is an
  entity code (``#34;`` is ``"``), decoded after parsing.

Whatever the text, the label must close exactly at its last character (no node, link or statement can
follow from inside it) and read back as the text, sanitised (no control character reaches a renderer).
"""

from __future__ import annotations

import re

import pytest

from inspector._sanitize import sanitize
from inspector.cache.graph import dot_label, mermaid_label

HOSTILE = [
    "plain",
    "ends with a backslash\\",
    'quote " inside',
    'x"]; evil [label="pwned"]; evil -> stage0; y [label="',
    'x\\"]; evil -> stage0; //',
    "new\nline -> stage0",
    "carriage\rreturn",
    "\\N \\G \\n \\l substitutions",
    '"]) --> stage0\nclick stage0 "javascript:alert(1)"',
    "`**markdown** string`",
    "#quot; #35; &amp; &#34; entity look-alikes",
    "<img src=x onerror=alert(1)> <br/>",
    "title\x1b]0;pwned\x07 clear\x1b[2J c1\x9b31m",
]


def _dot_string_end(text: str) -> int:
    """Where scan.l's quoted string that opens at text[0] ends (index of its closing quote), or -1."""
    assert text[0] == '"'
    i = 1
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] == '"':
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


def _dot_label_lines(body: str) -> list[str]:
    """An escString's text: ``\\\\`` one backslash, ``\\"`` a quote, ``\\n`` a line break."""
    lines: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "n":
                lines.append("".join(current))
                current = []
            elif nxt in '\\"':
                current.append(nxt)
            else:
                raise AssertionError(f"escape \\{nxt} would act in a label: {body!r}")
            i += 2
            continue
        current.append(body[i])
        i += 1
    lines.append("".join(current))
    return lines


@pytest.mark.parametrize("text", HOSTILE)
def test_dot_label_closes_where_it_ends_and_reads_back_as_the_text(text: str) -> None:
    lines = (text, "2 steps, 1.0 kB")
    quoted = dot_label(lines)
    assert _dot_string_end(quoted) == len(quoted) - 1, quoted  # nothing of the text is outside the string
    assert "\n" not in quoted and "\r" not in quoted
    assert _dot_label_lines(quoted[1:-1]) == [sanitize(text), "2 steps, 1.0 kB"]


@pytest.mark.parametrize("text", HOSTILE)
def test_mermaid_label_closes_where_it_ends_and_reads_back_as_the_text(text: str) -> None:
    lines = (text, "2 steps, 1.0 kB")
    quoted = mermaid_label(lines)
    assert re.fullmatch(r'"[^"\n\r]*"', quoted), quoted  # flow.jison: the string ends at the first quote
    assert not quoted[1:].startswith("`")  # not a Markdown string
    body = quoted[1:-1]
    assert "<" not in body.replace("<br/>", "") and ">" not in body.replace("<br/>", "")
    # The only "<" left is our own <br/>; each line's entity codes decode (after parsing) to its text.
    decoded = [re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), part) for part in body.split("<br/>")]
    assert decoded == [sanitize(text), "2 steps, 1.0 kB"]
    assert not re.search(r"#(?!\d+;)", body)  # every "#" starts one of our codes: no entity of the text acts


def test_a_label_cannot_inject_a_node_or_a_link_into_either_graph() -> None:
    # Every HOSTILE text in one label: the whole node statement must stay one line with one label.
    text = "".join(HOSTILE)
    dot = f"    stage0 [label={dot_label((text,))}];"
    mermaid = f"    stage0[{mermaid_label((text,))}]"
    assert dot.count("\n") == 0 and mermaid.count("\n") == 0
    assert _dot_string_end(dot[dot.index('"') :]) == len(dot) - len("];") - dot.index('"') - 1
    assert mermaid.count('"') == 2 and mermaid.endswith('"]')
