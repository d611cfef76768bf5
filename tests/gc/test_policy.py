"""gc policy pieces: templates, slugs, durations, the TOML file and its precedence, branch sources."""

from __future__ import annotations

import io
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from inspector.errors import TransportError, UsageError
from inspector.gc.branches import git_ls_remote, parse_ref_lines, read_branches_file
from inspector.gc.policy import (
    SLUG_PRESETS,
    Settings,
    SlugRule,
    format_duration,
    load_policy,
    parse_duration,
    parse_template,
    resolve_policy,
    spell_duration,
)
from inspector.oci.reference import parse_repository


def test_templates_capture_the_branch_slug_or_the_number() -> None:
    branch = parse_template("{branch}-buildcache")
    assert branch.match("feature-x-buildcache") == "feature-x"
    assert branch.match("-buildcache") is None  # the branch part cannot be empty
    assert branch.match("feature-x-cache") is None
    prefix = parse_template("buildcache-{branch}")
    assert prefix.match("buildcache-main") == "main"
    pr = parse_template("pr-{number}-buildcache")
    assert pr.match("pr-42-buildcache") == "42"
    assert pr.match("pr-4a-buildcache") is None
    assert pr.match("pr-٤-buildcache") is None  # only ASCII digits
    assert (branch.specificity, prefix.specificity, pr.specificity) == (11, 11, 14)


@pytest.mark.parametrize(
    "text",
    [
        "buildcache",
        "{branch}-{number}",
        "{branch}{branch}",
        "{name}-cache",
        "{branch}/cache",
        "-{branch}",
        "{branch",
    ],
)
def test_bad_templates_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_template(text)


def test_default_slug_is_the_ci_one_and_presets_follow_their_tools() -> None:
    default = SLUG_PRESETS["docker"]
    assert default.slug("feature/Add thing+x") == "feature-Add-thing-x"
    assert default.slug("release/1.2_rc") == "release-1.2_rc"
    assert default.slug("a" * 200) == "a" * 128
    assert SlugRule(lowercase=True).slug("Feature/X") == "feature-x"
    gitlab = SLUG_PRESETS["gitlab"]
    assert gitlab.slug("Feature/ABC_x.1") == "feature-abc-x-1"
    assert gitlab.slug("/leading/") == "leading"
    assert gitlab.slug("b" * 62 + "/c") == "b" * 62  # cut to 63, then the trailing '-' trimmed
    assert SLUG_PRESETS["github-slug"].slug("Feat/ABC_x.1") == "feat-abc_x.1"


def test_protect_globs_are_slugged_like_branches() -> None:
    assert SlugRule().slug_glob("release/*") == "release-*"
    assert SlugRule(lowercase=True).slug_glob("Hot fix/[ab]?") == "hot-fix-[ab]?"


@pytest.mark.parametrize("allowed", ["", "a-z/", "[a-z]", "a-z "])
def test_custom_slug_characters_are_checked(allowed: str) -> None:
    with pytest.raises(UsageError):
        SlugRule(allowed=allowed)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("14d", 14 * 86400), ("2w 3d", 17 * 86400), ("36h", 36 * 3600), ("90m", 5400), ("1w2d3h4m5s", 788645)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "14", "2 months", "1y", "d", "-3d", "3d!"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


POLICY = """
version = 1

[defaults]
tag-templates = ["{branch}-buildcache", "pr-{number}-buildcache"]
protect = ["main"]
max-age = "14d"
keep-last = 20
branches-file = "branches.txt"
slug = { preset = "gitlab" }

[[repository]]
name = "registry.test/team/app-cache"

[[repository]]
name = "registry.test/team/tools-cache"
tag-templates = "buildcache-{branch}"
protect = ["release/*"]
keep-last = 5
max-deletes = 10
slug = { lowercase = false, max-length = 40 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gc.toml"
    path.write_text(text)
    return path


def test_policy_file_layers_defaults_repository_and_flags(tmp_path: Path) -> None:
    loaded = load_policy(write(tmp_path, POLICY))
    (app_name, app), (tools_name, tools) = loaded.repositories
    assert (app_name, tools_name) == ("registry.test/team/app-cache", "registry.test/team/tools-cache")

    plain = resolve_policy(parse_repository(app_name), [loaded.defaults, app], Settings())
    assert [t.text for t in plain.rules.templates] == ["{branch}-buildcache", "pr-{number}-buildcache"]
    assert plain.rules.max_age == timedelta(days=14) and plain.rules.keep_last == 20
    assert plain.branches_file == str(tmp_path / "branches.txt")  # relative to the policy file
    assert plain.rules.slug == SLUG_PRESETS["gitlab"]

    own = resolve_policy(parse_repository(tools_name), [loaded.defaults, tools], Settings())
    assert [t.text for t in own.rules.templates] == ["buildcache-{branch}"]
    assert own.rules.protect == ("release/*",)  # a repository's table replaces the defaults' list
    assert (own.rules.keep_last, own.max_deletes) == (5, 10)
    assert (own.rules.slug.lowercase, own.rules.slug.max_length, own.rules.slug.allowed) == (
        False,
        40,
        "a-z0-9",
    )

    flags = Settings(keep_last=3, protect=("hotfix/*",), max_age="1w", branches_file=None)
    flagged = resolve_policy(parse_repository(tools_name), [loaded.defaults, tools], flags)
    assert flagged.rules.keep_last == 3 and flagged.rules.max_age == timedelta(weeks=1)
    assert flagged.rules.protect == ("release/*", "hotfix/*")  # a flag adds protection, never removes it


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[repository]]\nname = 'r.test/a'\nkeep-lats = 3\n", "unknown key 'keep-lats'"),
        ("version = 2\n[[repository]]\nname = 'r.test/a'\n", "version 2"),
        ("[defaults]\nmax-age = '14d'\n", "no [[repository]]"),
        ("[[repository]]\nkeep-last = 3\n", "needs name"),
        ("[[repository]]\nname = 'r.test/a'\nkeep-last = '3'\n", "expected an integer"),
        ("[[repository]]\nname = 'r.test/a'\n[[repository]]\nname = 'r.test/a'\n", "appears twice"),
        ("[[repository]]\nname = 'r.test/a'\nslug = { colour = 'x' }\n", "unknown key 'colour'"),
        ("[[repository]\n", "not valid TOML"),
        ("colour = 1\n[[repository]]\nname = 'r.test/a'\n", "unknown top-level key"),
    ],
)
def test_policy_file_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        load_policy(write(tmp_path, text))
    assert message in caught.value.message


def test_resolution_errors() -> None:
    with pytest.raises(UsageError, match="no tag template"):
        resolve_policy(parse_repository("r.test/a"), [], Settings())
    with pytest.raises(UsageError, match="not both"):
        resolve_policy(
            parse_repository("r.test/a"),
            [],
            Settings(tag_templates=("{branch}",), branches_file="f", branches_from_git="g"),
        )
    with pytest.raises(UsageError, match="slug preset"):
        resolve_policy(
            parse_repository("r.test/a"), [], Settings(tag_templates=("{branch}",), slug_preset="kebab")
        )


def test_ref_lines_accept_names_refs_and_ls_remote_output() -> None:
    sha = "a" * 40
    refs = parse_ref_lines(
        [
            "# live branches",
            "",
            "main",
            f"{sha}\trefs/heads/feature/x",
            "refs/heads/release/1.2",
            f"{sha}\trefs/pull/7/head",
            "refs/merge-requests/12/head",
            f"{sha}\trefs/tags/v1.0",
            "HEAD",
        ],
        "test",
    )
    assert refs.branches == {"main", "feature/x", "release/1.2"}
    assert refs.pulls == frozenset({7, 12})
    assert parse_ref_lines(["main"], "test").pulls is None  # nothing said about pull requests
    with pytest.raises(UsageError, match="cannot read line"):
        parse_ref_lines(["two words"], "test")


def test_a_byte_order_mark_is_not_part_of_the_first_branch(tmp_path: Path) -> None:
    # Notepad and PowerShell 5's `Set-Content -Encoding UTF8` start the file with EF BB BF; read as
    # plain UTF-8 that is U+FEFF glued to "main", which slugs to "-main" and judges main's cache gone.
    path = tmp_path / "branches.txt"
    path.write_bytes(b"\xef\xbb\xbfmain\r\nfeature/a\r\n")
    assert read_branches_file(str(path)).branches == {"main", "feature/a"}
    assert read_branches_file("-", io.StringIO("\ufeffmain\n")).branches == {"main"}  # a BOM on stdin too


@pytest.mark.parametrize(
    "line",
    [
        "0123456789abcdef0123456789abcdef01234567",  # git rev-parse HEAD; ls-remote | cut -f1
        "0123456789ABCDEF0123456789ABCDEF01234567",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",  # SHA-256 repositories
    ],
)
def test_a_bare_commit_hash_line_is_refused_naming_the_line(line: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_ref_lines(["main", "# comment", line], "branches file b.txt")
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"branches file b.txt: line 3 {line!r} is a commit hash")


@pytest.mark.parametrize("text", ["0d", "0s", "2m", "59m", "3599s"])
def test_a_max_age_under_one_hour_is_refused(text: str) -> None:
    # 0 would delete every cache, live branches included; "2m" is two minutes (m is minutes).
    with pytest.raises(UsageError, match="under one hour"):
        resolve_policy(parse_repository("r.test/a"), [], Settings(tag_templates=("{branch}",), max_age=text))
    assert resolve_policy(
        parse_repository("r.test/a"), [], Settings(tag_templates=("{branch}",), max_age="60m")
    ).rules.max_age == timedelta(hours=1)


@pytest.mark.parametrize(
    ("value", "spelled"),
    [
        (timedelta(days=14), "14 days"),
        (timedelta(hours=36), "1 day 12 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=2), "2 minutes"),
        (timedelta(weeks=2, seconds=1), "14 days 1 second"),
    ],
)
def test_durations_are_spelled_out_for_people(value: timedelta, spelled: str) -> None:
    assert spell_duration(value) == spelled


def test_branches_file_and_stdin(tmp_path: Path) -> None:
    path = tmp_path / "branches"
    path.write_text("main\nfeature/a\n")
    assert read_branches_file(str(path)).branches == {"main", "feature/a"}
    assert read_branches_file("-", io.StringIO("dev\n")).branches == {"dev"}
    with pytest.raises(UsageError, match="--branches-file"):
        read_branches_file(str(tmp_path / "missing"))


def test_git_ls_remote_against_a_real_repository(tmp_path: Path) -> None:
    repo = tmp_path / "origin"

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
        return done.stdout.strip()

    repo.mkdir()
    git("init", "-q", "-b", "main")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "one")
    head = git("rev-parse", "HEAD")
    git("branch", "feature/x")
    git("update-ref", "refs/pull/3/head", head)
    git("tag", "v1")
    refs = git_ls_remote(str(repo), pulls=True)
    assert refs.branches == {"main", "feature/x"} and refs.pulls == frozenset({3})
    assert git_ls_remote(str(repo), pulls=False).pulls is None
    with pytest.raises(TransportError, match="git ls-remote"):
        git_ls_remote(str(tmp_path / "nowhere"), pulls=False)


def test_git_never_prompts() -> None:
    seen: dict[str, Any] = {}

    def fake_run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.update(kwargs, args=args)
        return subprocess.CompletedProcess(args, 0, stdout="", stderr="")

    git_ls_remote("https://example.invalid/repo.git", pulls=True, run=fake_run)
    assert seen["env"]["GIT_TERMINAL_PROMPT"] == "0"
    assert seen["args"][-3:] == ["refs/heads/*", "refs/pull/*/head", "refs/merge-requests/*/head"]


def test_a_token_in_the_remote_never_reaches_a_message() -> None:
    def fail(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            args, 128, stdout="", stderr=f"fatal: unable to access '{args[3]}/'"
        )

    remote = "https://x-access-token:ghs_s3cr3t@github.com/acme/app.git"
    with pytest.raises(TransportError) as caught:
        git_ls_remote(remote, pulls=False, run=fail)
    assert "ghs_s3cr3t" not in caught.value.message and "github.com/acme/app.git" in caught.value.message


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["gc"], 2, "give a REPOSITORY, or --policy FILE"),
        (["gc", "r.test/a"], 2, "no tag template"),
        (["gc", "r.test/a", "-t", "{branch}", "--max-age", "two weeks"], 2, "duration 'two weeks'"),
        (["gc", "r.test/a", "-t", "cache"], 2, "expected exactly one {branch} or {number}"),
        (
            ["gc", "r.test/a", "-t", "{branch}", "--max-age", "0d"],
            2,
            "max-age 0s (0 seconds) is under one hour",
        ),
        (
            ["gc", "r.test/a", "-t", "{branch}", "--max-age", "2m"],
            2,
            "max-age 2m (2 minutes) is under one hour",
        ),
        (
            ["gc", "r.test/a", "-t", "{branch}", "--branches-file", "hashes.txt"],
            2,
            "line 1 '0123456789abcdef0123456789abcdef01234567' is a commit hash",
        ),
        (["gc", "--apply-plan", "plan.json"], 2, "--apply-plan needs the policy the plan was made under"),
        (["gc", "--apply-plan", "plan.json", "r.test/a", "-t", "{branch}", "--apply"], 2, "give no --apply"),
        (
            ["gc", "--apply-plan", "missing.json", "r.test/a", "-t", "{branch}"],
            2,
            "--apply-plan missing.json",
        ),
        (
            ["gc", "--apply-plan", "not-a-plan.json", "r.test/a", "-t", "{branch}"],
            8,
            "not a cacheinspect gc plan",
        ),
        (
            ["gc", "r.test/a", "-t", "{branch}", "-u", "me", "--password-stdin", "--branches-file", "-"],
            2,
            "both read stdin",
        ),
        (["gc", "r.test/a", "-t", "{branch}", "--policy", "missing.toml"], 2, "--policy missing.toml"),
    ],
)
def test_bad_input_is_one_line_and_a_documented_exit_code(
    args: list[str],
    code: int,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from inspector.cli import run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.json").write_text("{}")
    (tmp_path / "hashes.txt").write_text("0123456789abcdef0123456789abcdef01234567\n")
    (tmp_path / "not-a-plan.json").write_text('{"kind": "something else"}')
    assert run(args) == code
    err = capsys.readouterr().err
    assert err.startswith("cacheinspect: error: ") and message in err
