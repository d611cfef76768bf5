"""Escape injection: hostile text from a registry or a credential helper, through the real CLI under a
pseudo-terminal, and into JUnit XML and the GitHub step summary.

The payloads are what a terminal acts on (ECMA-48 and xterm's control sequences): OSC 0 sets the window
title, OSC 52 writes the clipboard, CSI 2 J clears the screen, U+009B is the 8-bit CSI, BEL ends an OSC.
None of these bytes may reach the screen; each must show as a visible escape (``\\x1b``) instead. Rich's
own styling (``ESC [ … m``, on a terminal) is ours and allowed; an OSC (``ESC ]``) never is.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.harness.evilserver import EvilServer, Reply, Request, error_reply, json_reply
from tests.harness.registry import LocalRegistry, load_samples, seed_sample

TITLE = "\x1b]0;pwned\x07"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
CLEAR = "\x1b[2J"
C1_CSI = "\x9b31m"
HOSTILE = f"tag{TITLE}{CLIPBOARD}{CLEAR}{C1_CSI}<img src=x>[link](http://evil.test)"
FORBIDDEN = (b"\x1b]", b"\x07", b"\x1b[2J", "\x9b".encode(), b"\x9b")


def run_in_pty(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, bytes]:
    """The CLI with stdout and stderr on a pseudo-terminal; exit code and every raw byte it wrote."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CACHEINSPECT_", "DOCKER_"))}
    clean.update({"DOCKER_CONFIG": "/nonexistent-docker-config", "TERM": "xterm-256color", "COLUMNS": "200"})
    clean.update(env or {})
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "inspector", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=clean,
    )
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    code = process.wait(timeout=5)
    return code, bytes(output)


def assert_inert(output: bytes) -> None:
    for sequence in FORBIDDEN:
        assert sequence not in output, (sequence, output[-2000:])
    assert b"Traceback" not in output, output


def test_tag_names_reach_the_terminal_as_text() -> None:
    tags = json.dumps({"name": "app", "tags": ["main", HOSTILE]})
    with EvilServer(lambda r: json_reply(200, tags)) as evil:
        code, output = run_in_pty("tags", f"{evil.host}/app")
    assert code == 0, output
    assert_inert(output)
    assert b"tag\\x1b]0;pwned\\x07" in output  # shown, not obeyed


def test_registry_error_message_reaches_the_terminal_as_text() -> None:
    with EvilServer(lambda r: error_reply(404, "MANIFEST_UNKNOWN", HOSTILE)) as evil:
        code, output = run_in_pty("show", f"{evil.host}/app:main")
    assert code == 3, output
    assert_inert(output)
    assert b"\\x1b[2J" in output


def test_plain_text_error_body_reaches_the_terminal_as_text() -> None:
    def script(request: Request) -> Reply:
        return Reply(400, {"Content-Type": "text/plain"}, HOSTILE.encode())

    with EvilServer(script) as evil:
        code, output = run_in_pty("show", f"{evil.host}/app:main")
    assert code == 5, output
    assert_inert(output)


def test_debug_log_of_a_hostile_challenge_is_inert() -> None:
    # Header bytes are Latin-1 to httpx: 0x9B arrives as U+009B, the 8-bit CSI, in the logged challenge.
    def script(request: Request) -> Reply:
        return Reply(401, {"WWW-Authenticate": 'Basic realm="\x9b2J\x1b]0;x"'})

    with EvilServer(script) as evil:
        code, output = run_in_pty("-v", "tags", f"{evil.host}/app")
    assert code == 4, output
    assert_inert(output)
    assert b"challenges" in output  # the log line was written


def test_helper_stderr_reaches_the_terminal_as_text(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-evil"
    helper.write_text(f"#!{sys.executable}\nimport sys\nsys.stderr.write({HOSTILE!r})\nsys.exit(1)\n")
    helper.chmod(0o755)
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "evil"}))
    env = {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with EvilServer(lambda r: Reply(401, {"WWW-Authenticate": 'Basic realm="evil"'})) as evil:
        code, output = run_in_pty("tags", f"{evil.host}/app", env=env)
    assert code == 4, output
    assert_inert(output)
    assert b"credential helper" in output


def test_du_rows_with_hostile_tags_are_inert_in_the_rich_table(registry: LocalRegistry) -> None:
    repo = "hostile/du"
    seed_sample(registry.host, repo, next(s for s in load_samples() if s["name"] == "multistage-max"))

    def script(request: Request) -> Reply | None:
        if request.path.endswith("/tags/list"):
            return json_reply(200, json.dumps({"name": repo, "tags": ["oci-index", HOSTILE]}))
        return None

    with EvilServer(script, upstream=registry.url) as evil:
        code, output = run_in_pty("du", f"{evil.host}/{repo}")
    assert code == 0, output  # the hostile tag is a skipped row, the rest is measured
    assert_inert(output)
    assert b"oci-index" in output, output


def test_du_unreadable_row_of_a_hostile_tag_stays_one_line(registry: LocalRegistry) -> None:
    """A listed tag that is no tag (distribution's grammar has no newline) is du's unreadable row: shown on
    one line, its newline, BEL and CR as escapes, so it cannot start a row of its own."""
    repo = "hostile/du-newline"
    seed_sample(registry.host, repo, next(s for s in load_samples() if s["name"] == "multistage-max"))
    tag = "x\nrepository  forged\x07\r"

    def script(request: Request) -> Reply | None:
        if request.path.endswith("/tags/list"):
            return json_reply(200, json.dumps({"name": repo, "tags": ["oci-index", tag]}))
        return None

    with EvilServer(script, upstream=registry.url) as evil:
        code, output = run_in_pty("du", f"{evil.host}/{repo}")
    assert code == 0, output
    assert_inert(output)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", output.decode()).replace("\r\n", "\n").split("\n")  # no styles
    # by hand: the tag, sanitized (\n \x0a, BEL \x07, CR \x0d), then the reason reference.py gives, which
    # quotes the tag with Python's repr
    row = r"unreadable  x\x0arepository  forged\x07\x0d: invalid tag 'x\nrepository  forged\x07\r'"
    assert any(line.startswith(row) for line in lines), lines
    assert not [line for line in lines if line.lstrip().startswith("repository  forged")]


def test_probe_junit_and_step_summary_carry_hostile_messages_as_text(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    repo = "hostile/probe-output"
    seed_sample(registry.host, repo, next(s for s in load_samples() if s["name"] == "multistage-max"))

    def script(request: Request) -> Reply | None:
        if request.path == "/v2/_catalog" or request.path.startswith(f"/v2/{repo}/referrers/"):
            return error_reply(405, "UNSUPPORTED", HOSTILE + "\x00\x01\ufffe")
        return None

    junit, summary = tmp_path / "probe.xml", tmp_path / "summary.md"
    with EvilServer(script, upstream=registry.url) as evil:
        code, output = run_in_pty(
            "probe",
            f"{evil.host}/{repo}:oci-index",
            "--read-only",
            "--junit",
            str(junit),
            env={"GITHUB_STEP_SUMMARY": str(summary)},
        )
    assert code == 0, output
    assert_inert(output)
    xml = junit.read_text(encoding="utf-8")
    ET.fromstring(xml)  # well-formed: every character valid in XML 1.0
    assert "\\x1b]52;c;" in xml and "\x1b" not in xml and "\x00" not in xml
    markdown = summary.read_text(encoding="utf-8")
    assert "\\x1b" not in markdown or "&#92;x1b" in markdown
    for raw in ("<img", "[link](", "\x1b", "](http"):
        assert raw not in markdown, (raw, markdown)
    assert "&#60;img src=x&#62;" in markdown
