"""Hostile text from an image and from a Dockerfile, through the real CLI: ``show --image`` and ``--dockerfile``.

Two sources reach a person's terminal as step labels:

* an image's config ``history[].created_by`` (``show --image``, the final stage's layers) and the Dockerfile a
  provenance attestation carries (``source.infos[].data``): pushed here to the real registry next to the
  named-build sample's cache, each in its own repository;
* a ``--dockerfile`` the person was given (instruction text, ``--build-arg`` values expanded into it).

The payloads are what a terminal acts on (ECMA-48 and xterm's control sequences): CSI colour and cursor
movement, OSC 0 (window title), OSC 8 (hyperlink), OSC 52 (clipboard write), C1 controls (U+009B is the
8-bit CSI, U+009D the 8-bit OSC), bidi overrides, NUL, and a line longer than any terminal. ``_sanitize``'s
rule: every C0 control, DEL and C1 control shows as ``\\xNN`` (two lower-case hex digits), every bidi
control as ``\\uNNNN``; the expected screen text below is written out by hand from that rule.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.paths import TESTDATA
from tests.harness.registry import LocalRegistry, load_samples, seed_sample
from tests.harness.support import run_cli
from tests.integration.test_hostile_output import run_in_pty
from tests.integration.test_repo import push_blob
from tests.integration.test_terminal import run_in_terminal

# Each part is one kind of sequence a terminal obeys; the hostile colour is a red *background* (41), which
# the report's own styles never use, so finding its raw bytes in the output can only mean a leak.
COLOUR = "\x1b[41m"
CURSOR = "\x1b[2A\x1b[H"
CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
HYPERLINK = "\x1b]8;;http://evil.test/\x1b\\click\x1b]8;;\x1b\\"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
C1 = "\x9b2J\x9d0;c1\x9c"
BIDI = "\u202eevil\u202c\u061c"
# A newline and a tab: a label that starts a line of its own could forge a row of the report.
FORGED = "\n  base  sha256:000000000000    9.9 kB  forged row\t"
# rich markup (a [link] makes an OSC 8 hyperlink; an unmatched closing tag is a MarkupError), Markdown/HTML,
# and what closes a Mermaid or DOT label.
MARKUP = '[link=http://evil.test]x[/link][/bold]<img src=x>"]#quot;\\ end'

# The same parts as they must appear on the screen, by the rule above (written by hand, not computed):
# ESC is \x1b, BEL \x07, U+009B \x9b, U+009D \x9d, U+009C \x9c, U+202E \u202e, U+202C \u202c, U+061C \u061c; the
# backslash of ESC \ (OSC 8's string terminator) is an ordinary character and stays.
SHOWN = {
    COLOUR: r"\x1b[41m",
    CURSOR: r"\x1b[2A\x1b[H",
    CLEAR: r"\x1b[2J",
    TITLE: r"\x1b]0;pwned\x07",
    HYPERLINK: r"\x1b]8;;http://evil.test/\x1b\click\x1b]8;;\x1b" + "\\",
    CLIPBOARD: r"\x1b]52;c;cm0gLXJmIH4=\x07",
    C1: r"\x9b2J\x9d0;c1\x9c",
    BIDI: r"\u202eevil\u202c\u061c",
    FORGED: r"\x0a  base  sha256:000000000000    9.9 kB  forged row\x09",
}

SAMPLE = "named-build"
# The named-build image's final stage (testdata/dockerfiles/named-build.Dockerfile): the config's history
# has one entry per layer, the base's ADD first, then stage-2's RUN apk, COPY --from=build, COPY --from=test.
HISTORY_BY_LAYER = (
    f"RUN /bin/sh -c apk add {COLOUR}{CURSOR}{CLEAR}{TITLE}{FORGED} # buildkit",
    f"COPY {HYPERLINK}{CLIPBOARD}{C1}{BIDI}\x00 /usr/local/bin/app # buildkit",
    "COPY " + "A" * 3000 + f"{CLIPBOARD} /usr/share/app/ # buildkit",
)


def sample_blob(digest: str) -> bytes:
    return (TESTDATA / "layouts" / SAMPLE / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def put_manifest(host: str, repository: str, reference: str, media_type: str, raw: bytes) -> dict[str, Any]:
    response = httpx.put(
        f"http://{host}/v2/{repository}/manifests/{reference}",
        content=raw,
        headers={"Content-Type": media_type},
    )
    assert response.status_code == 201, response.text
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(raw).hexdigest(), "size": len(raw)}


def image_index() -> dict[str, Any]:
    layout = json.loads((TESTDATA / "layouts" / SAMPLE / "index.json").read_text())
    entry = next(
        m for m in layout["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "image"
    )
    index: dict[str, Any] = json.loads(sample_blob(entry["digest"]))
    return index


def push_history_image(host: str, repository: str) -> str:
    """The sample's cache at ``:latest`` and its image at ``:image``, whose config history is hostile."""
    seed_sample(host, repository, {**next(s for s in load_samples() if s["name"] == SAMPLE), "push": {}})
    platform_entry = image_index()["manifests"][0]
    manifest = json.loads(sample_blob(platform_entry["digest"]))
    config = json.loads(sample_blob(manifest["config"]["digest"]))
    own = [entry for entry in config["history"] if not entry.get("empty_layer")][1:]
    assert len(own) == len(HISTORY_BY_LAYER)
    for entry, text in zip(own, HISTORY_BY_LAYER, strict=True):
        entry["created_by"] = text
    config_blob = push_blob(host, repository, json.dumps(config).encode())
    manifest["config"] = {**manifest["config"], "digest": config_blob["digest"], "size": config_blob["size"]}
    raw = json.dumps(manifest).encode()
    put_manifest(host, repository, "image", manifest["mediaType"], raw)
    return f"{host}/{repository}:image"


def push_provenance_image(host: str, repository: str, dockerfile: str) -> str:
    """The sample's cache at ``:latest`` and its image at ``:image``, whose provenance carries ``dockerfile``."""
    seed_sample(host, repository, {**next(s for s in load_samples() if s["name"] == SAMPLE), "push": {}})
    index = image_index()
    attestation_entry = index["manifests"][1]
    attestation = json.loads(sample_blob(attestation_entry["digest"]))
    statement = json.loads(sample_blob(attestation["layers"][0]["digest"]))
    infos = statement["predicate"]["runDetails"]["metadata"]["buildkit_metadata"]["source"]["infos"]
    infos[0]["data"] = base64.b64encode(dockerfile.encode()).decode()
    statement_blob = push_blob(host, repository, json.dumps(statement).encode())
    attestation["layers"][0] = {
        **attestation["layers"][0],
        "digest": statement_blob["digest"],
        "size": statement_blob["size"],
    }
    pushed = put_manifest(
        host, repository, "attestation", attestation["mediaType"], json.dumps(attestation).encode()
    )
    index["manifests"][1] = {**attestation_entry, "digest": pushed["digest"], "size": pushed["size"]}
    put_manifest(host, repository, "image", index["mediaType"], json.dumps(index).encode())
    return f"{host}/{repository}:image"


def hostile_dockerfile() -> str:
    """named-build's Dockerfile with the payloads in stage-2's instructions, each on the line it had (the
    provenance maps steps to line numbers), and a hostile LABEL after the last line."""
    text = (TESTDATA / "dockerfiles" / f"{SAMPLE}.Dockerfile").read_text()
    replaced = {
        "RUN apk add --no-cache ca-certificates": f"RUN apk add {COLOUR}{CURSOR}{CLEAR}{TITLE}",
        "COPY --from=build /out/app /usr/local/bin/app": f"COPY --from=build /out/app /{HYPERLINK}{CLIPBOARD}",
        "COPY --from=test /out/test-report.txt /usr/share/app/": f"COPY --from=test /out/{C1}{BIDI} /{MARKUP}",
    }
    for old, new in replaced.items():
        assert old in text
        text = text.replace(old, new)
    return text + f'LABEL evil="{TITLE}{CLIPBOARD}"\n'


# What rich itself writes to a terminal: SGR styles, the cursor hidden and shown around a progress bar, and
# the progress line erased (ESC [ 1 A, ESC [ 2 K). Any other escape sequence in the output came from the text.
_OWN_SEQUENCE = re.compile(r"\x1b\[(?:[0-9;]*m|\?25[lh]|1A|2K)")
_RAW_PAYLOADS = (
    COLOUR,
    "\x1b[2A",
    "\x1b[H",
    CLEAR,
    "\x1b]",
    "\x07",
    "\x9b",
    "\x9d",
    "\x9c",
    "\u202e",
    "\x00",
)


def screen_text(output: bytes, *, tabs: bool = False) -> str:
    """The text a terminal shows for ``output`` once it is proven inert: valid UTF-8, no escape sequence but
    rich's own, no raw payload, no C0/C1 control or bidi control left (``tabs``: but TSV's separators);
    returned without the styles."""
    assert b"Traceback" not in output, output[-2000:]
    text = output.decode("utf-8")  # a lone 0x9B byte (8-bit CSI) would not decode
    for raw in _RAW_PAYLOADS:
        assert raw not in text, (raw, text[-2000:])
    plain = _OWN_SEQUENCE.sub("", text)
    left = {
        char
        for char in plain
        if (ord(char) < 0x20 and char not in ("\r\n\t" if tabs else "\r\n"))
        or 0x7F <= ord(char) <= 0x9F
        or char in BIDI_CONTROLS
    }
    assert not left, (left, plain[-2000:])
    return plain.replace("\r\n", "\n").replace("\r", "")


# Unicode's Bidi_Control characters (UAX #9): ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def lines_of(text: str) -> list[str]:
    return [line.rstrip() for line in text.split("\n")]


@pytest.fixture(scope="module")
def history_image(registry: LocalRegistry) -> tuple[str, str]:
    """(cache, image): the image's config history is hostile."""
    image = push_history_image(registry.host, "hostile-text/history")
    return f"{registry.host}/hostile-text/history:latest", image


@pytest.fixture(scope="module")
def provenance_image(registry: LocalRegistry) -> tuple[str, str]:
    """(cache, image): the Dockerfile in the image's provenance attestation is hostile."""
    image = push_provenance_image(registry.host, "hostile-text/provenance", hostile_dockerfile())
    return f"{registry.host}/hostile-text/provenance:latest", image


# By hand, from the rule: "RUN /bin/sh -c apk add … # buildkit" loses BuildKit's " # buildkit" and the
# "/bin/sh -c " of the default shell (provenance.py _created_by, BuildKit's history wording), then each
# payload shows as its escapes.
HISTORY_SHOWN = (
    r"RUN apk add \x1b[41m\x1b[2A\x1b[H\x1b[2J\x1b]0;pwned\x07"
    r"\x0a  base  sha256:000000000000    9.9 kB  forged row\x09",
    r"COPY \x1b]8;;http://evil.test/\x1b\click\x1b]8;;\x1b\\x1b]52;c;cm0gLXJmIH4=\x07"
    r"\x9b2J\x9d0;c1\x9c\u202eevil\u202c\u061c\x00 /usr/local/bin/app",
    "COPY " + "A" * 3000 + r"\x1b]52;c;cm0gLXJmIH4=\x07 /usr/share/app/",
)


def test_hand_written_screen_text_follows_the_rule() -> None:
    """The hand-written SHOWN strings spell each payload the way the rule says (a check on the oracle)."""
    assert HISTORY_SHOWN[0] == (
        "RUN apk add " + SHOWN[COLOUR] + SHOWN[CURSOR] + SHOWN[CLEAR] + SHOWN[TITLE] + SHOWN[FORGED]
    )
    assert HISTORY_SHOWN[1] == (
        "COPY " + SHOWN[HYPERLINK] + SHOWN[CLIPBOARD] + SHOWN[C1] + SHOWN[BIDI] + r"\x00 /usr/local/bin/app"
    )


def test_image_history_in_a_terminal_is_shown_as_text(history_image: tuple[str, str]) -> None:
    cache, image = history_image
    code, output = run_in_pty("show", cache, "--image", image, "--no-check-blobs")
    assert code == 0, output[-2000:]
    lines = lines_of(screen_text(output))
    # stage-2's own steps, in the order of the image's history, each on its own line under the stage title
    assert " " * 8 + HISTORY_SHOWN[0] in lines, lines
    assert " " * 8 + HISTORY_SHOWN[1] in lines, lines
    assert not [line for line in lines if "forged row" in line and not line.startswith(" " * 8 + "RUN apk")]
    # the 3,000-column label wraps at the terminal's 200 columns (rich moves the long word under "COPY" to
    # lines of its own and cuts it at the width): no line is wider, and the pieces read back the whole text
    assert all(len(line) <= 200 for line in lines)
    assert "A" * 3000 + r"\x1b]52;c;cm0gLXJmIH4=\x07 /usr/share/app/" in "".join(lines)


def test_image_history_piped_keeps_the_long_line_whole(history_image: tuple[str, str]) -> None:
    cache, image = history_image
    done = run_cli("show", cache, "--image", image, "--no-check-blobs")
    assert done.returncode == 0, done.stderr
    lines = lines_of(screen_text(done.stdout.encode()))
    for shown in HISTORY_SHOWN:
        assert " " * 8 + shown in lines, shown[:80]


def test_image_history_in_every_other_form(history_image: tuple[str, str]) -> None:
    cache, image = history_image
    show = ("show", cache, "--image", image, "--no-check-blobs")

    # --top 3: the three largest layers are the base's 2,802 bytes (3f1987a27daa, stage-2's alpine),
    # the golang base's 2,123 and stage-2's COPY --from=build (b5cc720c3206, 2,014): its row names the step.
    code, output = run_in_pty(*show, "--top", "3")
    assert code == 0, output[-2000:]
    assert "2.0 kB  sha256:b5cc720c3206  stage 2 #3  " + HISTORY_SHOWN[1] in lines_of(screen_text(output))

    code, output = run_in_pty(*show, "--top", "3", "-o", "tsv")
    assert code == 0, output[-2000:]
    rows = [line.split("\t") for line in lines_of(screen_text(output, tabs=True))]
    assert [
        "2014",
        "sha256:b5cc720c32062744593632397a71e321009c1b600ee4862fcf896a5f7456e34f",
        "stage 2",
        "#3",
        HISTORY_SHOWN[1],
        "1",
    ] in rows, rows

    code, output = run_in_pty(*show, "--json")
    assert code == 0, output[-2000:]
    document = json.loads(screen_text(output))  # JSON writes every control as \uXXXX: inert as it is
    instructions = {s["instruction"] for stage in document["stages"] for s in stage["steps"]}
    assert {
        "RUN apk add " + COLOUR + CURSOR + CLEAR + TITLE + FORGED
    } <= instructions  # the true text, decoded

    for fmt in ("mermaid", "dot"):  # history names steps, not stages: the graph holds none of it
        code, output = run_in_pty(*show, "--graph", fmt)
        assert code == 0, output[-2000:]
        assert "pwned" not in screen_text(output)


# The provenance's Dockerfile and --dockerfile name stage-2's steps with BuildKit's labels (convert.go):
# "[stage-2 k/4] TEXT", 4 = FROM an external image + RUN + COPY + COPY; the text is the line as written.
DOCKERFILE_SHOWN = (
    "[stage-2 2/4] RUN apk add " + r"\x1b[41m\x1b[2A\x1b[H\x1b[2J\x1b]0;pwned\x07",
    "[stage-2 3/4] COPY --from=build /out/app /"
    + r"\x1b]8;;http://evil.test/\x1b\click\x1b]8;;\x1b\\x1b]52;c;cm0gLXJmIH4=\x07",
    "[stage-2 4/4] COPY --from=test /out/"
    + r"\x9b2J\x9d0;c1\x9c\u202eevil\u202c\u061c"
    + ' /[link=http://evil.test]x[/link][/bold]<img src=x>"]#quot;\\ end',  # printable: shown as it is
)


def test_provenance_dockerfile_in_a_terminal_is_shown_as_text(provenance_image: tuple[str, str]) -> None:
    cache, image = provenance_image
    code, output = run_in_pty("show", cache, "--image", image, "--no-check-blobs")
    assert code == 0, output[-2000:]
    lines = lines_of(screen_text(output))
    for shown in DOCKERFILE_SHOWN:
        assert " " * 8 + shown in lines, (shown, lines)
    for fmt in ("mermaid", "dot"):  # stage names are checked by the parser (parse.go validStageName)
        code, output = run_in_pty("show", cache, "--image", image, "--no-check-blobs", "--graph", fmt)
        assert code == 0, output[-2000:]
        assert "stage-2" in screen_text(output)


def test_provenance_dockerfile_in_a_real_terminal(provenance_image: tuple[str, str]) -> None:
    """tmux as the terminal: the labels on its screen, its title unchanged, no clipboard buffer made."""
    cache, image = provenance_image
    terminal = run_in_terminal(
        [sys.executable, "-m", "inspector", "show", cache, "--image", image, "--no-check-blobs"], 250
    )
    for shown in DOCKERFILE_SHOWN:
        assert " " * 8 + shown in [line.rstrip() for line in terminal.screen], (shown, terminal.screen)
    assert terminal.title_after == terminal.title_before and "pwned" not in terminal.title_after
    assert terminal.buffers == ""


def test_the_terminal_check_sees_a_title_and_a_clipboard_write() -> None:
    """The same tmux check on the raw payloads: the title changes and a buffer appears (the check can fail)."""
    payload = f"printf '{TITLE}{CLIPBOARD}'"
    terminal = run_in_terminal(["sh", "-c", payload.replace("\x1b", "\\033").replace("\x07", "\\007")], 80)
    assert terminal.title_after == "pwned" != terminal.title_before
    assert (
        "rm -rf ~"
        in subprocess.run(  # the base64 of OSC 52 above decodes to "rm -rf ~"
            ["base64", "-d"], input=CLIPBOARD.split(";")[2].rstrip("\x07"), capture_output=True, text=True
        ).stdout
    )
    assert terminal.buffers != ""


HOSTILE_ARGS = (
    "--build-arg",
    f"VERSION={TITLE}{CLIPBOARD}{FORGED}",
    "--build-arg",
    f'REGISTRY=evil"]<b>#{TITLE}.test',
)
# By hand: VERSION is expanded into build's RUN (the continuation keeps the 6 spaces that start line 12 after
# the space before the backslash: 7); REGISTRY into both FROM lines, the bases' names.
BUILD_SHOWN = (
    '[build 6/6] RUN go build -ldflags "-X main.version='
    + r"\x1b]0;pwned\x07\x1b]52;c;cm0gLXJmIH4=\x07"
    + r"\x0a  base  sha256:000000000000    9.9 kB  forged row\x09"
    + '"       -o /out/app ./cmd/app'
)
REGISTRY_SHOWN = 'evil"]<b>#' + r"\x1b]0;pwned\x07" + ".test"


@pytest.fixture(scope="module")
def dockerfile_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("hostile-dockerfile") / "Dockerfile"
    path.write_text(hostile_dockerfile())
    return str(path)


def test_dockerfile_and_build_args_in_a_terminal_are_shown_as_text(
    provenance_image: tuple[str, str], dockerfile_path: str
) -> None:
    cache, _ = provenance_image
    show = ("show", cache, "--dockerfile", dockerfile_path, *HOSTILE_ARGS, "--no-check-blobs")
    code, output = run_in_pty(*show, env={"COLUMNS": "400"})
    assert code == 0, output[-2000:]
    lines = lines_of(screen_text(output))
    for shown in (*DOCKERFILE_SHOWN, BUILD_SHOWN):
        assert " " * 8 + shown in lines, (shown, lines)
    # the stage's title names its base from the FROM line, REGISTRY expanded (matched by position)
    assert any(f"FROM {REGISTRY_SHOWN}/library/alpine:3.20 (matched)" in line for line in lines), lines
    assert len([line for line in lines if "forged row" in line]) == 1  # the label's line, nothing of its own

    # --top: each place is rich markup, escaped (an unescaped "[/bold]" would be a MarkupError); 4c50a29a09df
    # (184 bytes) is stage-2's COPY --from=test, the step whose label carries the markup
    code, output = run_in_pty(*show, "--top", "12", env={"COLUMNS": "400"})
    assert code == 0, output[-2000:]
    row = "sha256:4c50a29a09df  stage-2 #4  " + DOCKERFILE_SHOWN[2]
    assert any(line.endswith(row) for line in lines_of(screen_text(output))), row

    code, output = run_in_pty(*show, "--top", "4", "-o", "tsv")
    assert code == 0, output[-2000:]
    rows = [line.split("\t") for line in lines_of(screen_text(output, tabs=True)) if line]
    # b5cc720c3206 (2,014 bytes) is stage-2's COPY --from=build, 588d15098df9 (1,984) build's go build
    assert [row[1][7:19] for row in rows[1:]] == [
        "3f1987a27daa",
        "d0b249744b67",
        "b5cc720c3206",
        "588d15098df9",
    ]
    assert rows[3][4] == DOCKERFILE_SHOWN[1] and rows[4][4] == BUILD_SHOWN

    code, output = run_in_pty(*show, "--json")
    assert code == 0, output[-2000:]
    document = json.loads(screen_text(output))
    names = {stage["base"].get("name") for stage in document["stages"]}
    assert f'evil"]<b>#{TITLE}.test/library/alpine:3.20' in names  # the true text, decoded from JSON


def test_dockerfile_text_in_the_graphs_cannot_leave_its_label(
    provenance_image: tuple[str, str], dockerfile_path: str
) -> None:
    cache, _ = provenance_image
    show = ("show", cache, "--dockerfile", dockerfile_path, *HOSTILE_ARGS, "--no-check-blobs", "--graph")
    code, output = run_in_pty(*show, "mermaid")
    assert code == 0, output[-2000:]
    # Mermaid: the escapes as text, then '"' #34;, '<' #60;, '>' #62;, '#' #35; (graph.py's entity codes)
    mermaid = "evil#34;]#60;b#62;#35;" + r"\x1b]0;pwned\x07" + ".test/library/alpine:3.20<br/>"
    assert f'[("{mermaid}' in screen_text(output), screen_text(output)
    code, output = run_in_pty(*show, "dot")
    assert code == 0, output[-2000:]
    # DOT: each backslash of an escape doubled (a lone one would start a DOT escape), the quote escaped
    dot = 'evil\\"]<b>#' + r"\\x1b]0;pwned\\x07" + ".test/library/alpine:3.20\\n"
    assert f'[label="{dot}' in screen_text(output), screen_text(output)


def test_diff_dockerfile_view_is_shown_as_text(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    provenance_image: tuple[str, str],
    dockerfile_path: str,
) -> None:
    """diff names the first step that differs: multistage-max's stage-2 is another build, so its step #2,
    stage-2's RUN apk, differs and is named by its label."""
    cache, _ = provenance_image
    other = f"{registry.host}/samples/multistage-max:image-manifest"
    code, output = run_in_pty(
        "diff", cache, other, "--dockerfile", dockerfile_path, *HOSTILE_ARGS, env={"COLUMNS": "400"}
    )
    assert code == 0, output[-2000:]
    lines = lines_of(screen_text(output))
    assert any(line.startswith("stage-2: #2 " + DOCKERFILE_SHOWN[0] + " differs (") for line in lines), lines


@pytest.mark.parametrize(
    ("dockerfile", "extra", "shown"),
    [
        # an unknown command word is named in the error (instructions/parse.go ParseInstruction)
        (f"FROM alpine\n{TITLE}RUN x\n", (), r"unknown instruction: \x1b]0;pwned\x07run"),
        # a stage name with symbols is refused (parse.go validStageName), quoted as Python's repr does
        (f"FROM alpine AS b{TITLE}\n", (), r"invalid name for build stage: 'b\x1b]0;pwned\x07'"),
        ("FROM alpine AS b\n", ("--target", f"x{TITLE}"), r"--target 'x\x1b]0;pwned\x07': no such stage"),
    ],
)
def test_a_hostile_dockerfile_that_does_not_parse_is_a_one_line_inert_error(
    tmp_path: Path, dockerfile: str, extra: tuple[str, ...], shown: str
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile)
    # parsed before any request (exit 2): the registry address is never contacted
    code, output = run_in_pty("show", "127.0.0.1:9/app:cache", "--dockerfile", str(path), *extra)
    assert code == 2, output
    (line,) = [line for line in lines_of(screen_text(output)) if line]
    assert line.startswith("cacheinspect: error: ") and shown in line.lower(), line
