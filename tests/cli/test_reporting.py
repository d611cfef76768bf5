"""The one error-document shape and the one job-summary writer every command uses (cli/app.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inspector.cli.app import STATE, error_json, report_error, write_job_summary
from inspector.errors import Denied, MissingContent
from tests.harness.support import run_cli

# ESC and U+202E (a bidi override) written out as escapes, as inspector/_sanitize.py's docstring says.
HOSTILE = "tag \x1b[2Jgone\u202e"
SHOWN = "tag \\x1b[2Jgone\\u202e"


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    STATE.reset()
    yield
    STATE.reset()


def test_error_json_names_the_class_and_its_exit_code() -> None:
    # MissingContent is exit 3 and Denied exit 4 in the tree of inspector/errors.py.
    assert error_json(MissingContent("no such tag", hint="see tags"), sanitized=True) == {
        "code": "MissingContent",
        "exitCode": 3,
        "message": "no such tag",
        "hint": "see tags",
    }
    assert error_json(Denied("nope", status=403, method="DELETE", url="https://r/x"), sanitized=False) == {
        "code": "Denied",
        "exitCode": 4,
        "message": "nope",
        "hint": None,
    }


def test_error_json_sanitizes_only_when_asked() -> None:
    error = MissingContent(HOSTILE, hint=HOSTILE)
    assert (error_json(error, sanitized=True)["message"], error_json(error, sanitized=True)["hint"]) == (
        SHOWN,
        SHOWN,
    )
    assert error_json(error, sanitized=False)["message"] == HOSTILE


def test_report_error_prints_the_document_only_in_json_mode(capsys: pytest.CaptureFixture[str]) -> None:
    report_error(MissingContent(HOSTILE))
    plain = capsys.readouterr()
    assert (plain.out, plain.err) == ("", f"cacheinspect: error: {SHOWN}\n")
    STATE.json = True
    report_error(MissingContent("gone", hint="look"))
    both = capsys.readouterr()
    # One compact line: json.dumps without indent, keys in the order code, exitCode, message, hint.
    assert (
        both.out
        == '{"error": {"code": "MissingContent", "exitCode": 3, "message": "gone", "hint": "look"}}\n'
    )
    assert both.err == "cacheinspect: error: gone\ncacheinspect: hint: look\n"


def test_job_summary_appends_to_the_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_job_summary("## probe\n")
    assert summary.read_text() == "earlier step\n## probe\n"  # GitHub's file holds every step's summary


def test_a_file_given_is_written_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, chosen = tmp_path / "step.md", tmp_path / "chosen.md"
    summary.write_text("earlier step\n")
    chosen.write_text("stale\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_job_summary("## gc\n", chosen)
    assert (chosen.read_text(), summary.read_text()) == ("## gc\n", "earlier step\n")


@pytest.mark.parametrize("value", [None, ""])
def test_no_summary_without_a_file(
    value: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if value is None:
        monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    else:
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", value)
    write_job_summary("## gc\n")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_summary_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a directory
    with pytest.raises(IsADirectoryError) as caught:
        write_job_summary("## probe\n")
    assert caught.value.filename == str(tmp_path)


def test_probe_fails_with_exit_2_when_the_step_summary_cannot_be_written(tmp_path: Path) -> None:
    """probe --offline makes no request; the summary CI asked for cannot be had, so the run says so."""
    result = run_cli("probe", "--offline", "ghcr.io", env={"GITHUB_STEP_SUMMARY": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"cacheinspect: error: GITHUB_STEP_SUMMARY {tmp_path}: Is a directory\n"
    assert result.stdout == ""
