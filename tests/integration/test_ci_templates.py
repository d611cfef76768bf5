"""The CI integration files: the GitHub Action, its workflow examples, the GitLab template, the Kubernetes
manifests and the Dockerfile, tested as far as this machine allows.

None of their platforms runs here. What can be checked is: every file parses and names what its platform
requires; the action's shell steps run, through a small interpreter of the expressions they use, with the
``GITHUB_*`` variables a runner sets, against the test registry; the GitLab shard arithmetic runs in bash;
the Kubernetes ``$(VAR)`` expansion and credential mount agree with what the CLI reads; ``show --dockerfile``
reads our own Dockerfile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml  # type: ignore[import-untyped]  # pyyaml ships no stubs

from inspector.gc.policy import load_policy
from inspector.oci.reference import parse_repository
from inspector.registry.credentials import resolve_credentials
from tests.harness import make_testdata
from tests.harness.dockerfilegen import from_dockerfile
from tests.harness.fixturegen import write_layout
from tests.harness.paths import REPO_ROOT
from tests.harness.registry import LocalRegistry, seed_gc_demo, seed_sample
from tests.integration.test_docs import cacheinspect_invocations, check_invocation

ACTION = REPO_ROOT / "action.yml"
GITHUB_EXAMPLES = sorted((REPO_ROOT / "examples" / "github").glob("*.yml"))
GITLAB_TEMPLATE = REPO_ROOT / "ci" / "gitlab" / "cacheinspect.gitlab-ci.yml"
GITLAB_EXAMPLE = REPO_ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
DOCKERFILE = REPO_ROOT / "Dockerfile"

#: GitHub's bash for ``shell: bash`` (``bash --noprofile --norc -eo pipefail {0}``): a failing command ends the step.
GITHUB_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -- the GitHub Action: declarations ------------------------------------------------------------------------

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_STEP_OUTPUT = re.compile(r"^steps\.([\w-]+)\.outputs\.([\w-]+)$")


def action() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(ACTION)
    return document


def _written_outputs(step: Mapping[str, Any]) -> set[str]:
    """The outputs a run step writes (``name=value`` lines to ``$GITHUB_OUTPUT``); setup-python's are its own."""
    if str(step.get("uses", "")).startswith("actions/setup-python@"):
        return {"python-path", "python-version", "cache-hit"}  # actions/setup-python's action.yml outputs
    return set(re.findall(r"^\s*echo \"([\w-]+)=", step.get("run", ""), flags=re.MULTILINE))


def test_action_declares_what_github_requires() -> None:
    doc = action()
    assert doc["name"] and doc["description"]
    assert doc["runs"]["using"] == "composite"
    steps = doc["runs"]["steps"]
    by_id = {step["id"]: step for step in steps}
    assert len(by_id) == len(steps), "every step has a distinct id"
    for step in steps:
        if "run" in step:
            assert step.get("shell") == "bash", f"{step['id']}: a composite run step must name its shell"
            # inputs reach scripts through env, never pasted into the script (no injection through an input)
            assert "${{" not in step["run"], f"{step['id']}: an expression inside the script"
        else:
            assert re.fullmatch(r"actions/setup-python@v\d+", step["uses"]), step
    assert set(doc["outputs"]) == {"exit-code", "verdict", "report"}
    for name, output in doc["outputs"].items():
        found = _STEP_OUTPUT.match(_EXPRESSION.fullmatch(output["value"]).group(1))  # type: ignore[union-attr]
        assert found, f"output {name} is not a step output"
        step_id, step_output = found.groups()
        assert step_output in _written_outputs(by_id[step_id]), (
            f"output {name}: step {step_id} never writes it"
        )
    used = {
        expr
        for step in steps
        for value in [*step.get("env", {}).values(), *step.get("with", {}).values(), step.get("name", "")]
        for expr in _EXPRESSION.findall(str(value))
    }
    for expr in used:
        if expr.startswith("inputs."):
            assert expr.removeprefix("inputs.") in doc["inputs"], expr
        else:
            found = _STEP_OUTPUT.match(expr)
            assert found, f"an expression the action's interpreter here does not know: {expr}"
            step_id, step_output = found.groups()
            assert step_output in _written_outputs(by_id[step_id]), expr
    assert doc["inputs"]["python-version"]["default"] == "3.11"
    assert doc["inputs"]["fail-on"]["default"] == "any"


# -- the GitHub Action: its steps, run ----------------------------------------------------------------------


@dataclass
class ActionRun:
    steps: dict[str, dict[str, str]]  # step id -> its outputs
    failed: str | None  # the id of the step that failed
    code: int  # that step's exit code (0: none failed)
    log: str  # what the steps printed

    def output(self, name: str) -> str:
        """An output of the action, through its ``outputs.<name>.value`` expression."""
        return _expand(action()["outputs"][name]["value"], {}, self.steps)


def _expand(text: str, inputs: Mapping[str, str], steps: Mapping[str, Mapping[str, str]]) -> str:
    """The expressions the action uses: ``inputs.NAME`` and ``steps.ID.outputs.NAME`` (GitHub gives "" for an
    output never written)."""

    def value(found: re.Match[str]) -> str:
        expr = found.group(1)
        if expr.startswith("inputs."):
            return inputs[expr.removeprefix("inputs.")]
        output = _STEP_OUTPUT.match(expr)
        assert output, f"not interpreted here: {expr}"
        return steps.get(output.group(1), {}).get(output.group(2), "")

    return _EXPRESSION.sub(value, text)


def _read_outputs(path: Path) -> dict[str, str]:
    """``$GITHUB_OUTPUT``: ``name=value`` lines (the action writes no multi-line values)."""
    outputs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, separator, value = line.partition("=")
        assert separator and "<<" not in name, f"unexpected GITHUB_OUTPUT line {line!r}"
        outputs[name] = value
    return outputs


@dataclass(frozen=True)
class Runner:
    """What a runner gives an action: a workspace, a temp directory, the action's checkout, a summary file."""

    root: Path

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def summary(self) -> Path:
        return self.root / "step-summary.md"

    def env(self, action_path: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "INPUT_"))}
        for name in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "DOCKER_AUTH_CONFIG", "GH_TOKEN"):
            env.pop(name, None)
        env.update(
            DOCKER_CONFIG=str(self.root / "docker-config"),  # anonymous, whatever this machine has
            GITHUB_ACTIONS="true",
            GITHUB_ACTION="__run_cacheinspect",
            GITHUB_ACTION_PATH=str(action_path),
            GITHUB_RUN_ID="4242",
            GITHUB_STEP_SUMMARY=str(self.summary),
            GITHUB_WORKSPACE=str(self.workspace),
            RUNNER_TEMP=str(self.root / "runner-temp"),
            NO_COLOR="1",
        )
        return env


def run_action(
    runner: Runner,
    action_path: Path,
    with_: Mapping[str, str],
    *,
    only: tuple[str, ...] | None = None,
    done: Mapping[str, dict[str, str]] | None = None,
) -> ActionRun:
    """Run the action's steps as a runner would (``only``: these step ids; ``done``: outputs of steps run before).

    ``actions/setup-python`` is not run: its ``python-path`` is this interpreter.
    """
    doc = action()
    inputs = {name: str(spec.get("default", "")) for name, spec in doc["inputs"].items()}
    unknown = set(with_) - set(inputs)
    assert not unknown, f"the action has no input {unknown}"
    inputs.update(with_)
    missing = [name for name, spec in doc["inputs"].items() if spec.get("required") and not inputs[name]]
    assert not missing, f"required inputs missing: {missing}"
    for folder in (runner.workspace, runner.root / "runner-temp"):
        folder.mkdir(parents=True, exist_ok=True)
    steps: dict[str, dict[str, str]] = {k: dict(v) for k, v in (done or {}).items()}
    log: list[str] = []
    for index, step in enumerate(doc["runs"]["steps"]):
        if only is not None and step["id"] not in only:
            continue
        if "uses" in step:
            steps[step["id"]] = {"python-path": sys.executable}
            continue
        output_file = runner.root / f"output-{step['id']}-{index}"
        output_file.write_text("", encoding="utf-8")
        script = runner.root / f"step-{step['id']}.sh"
        script.write_text(step["run"], encoding="utf-8")
        env = runner.env(action_path) | {"GITHUB_OUTPUT": str(output_file)}
        env |= {name: _expand(str(value), inputs, steps) for name, value in step.get("env", {}).items()}
        result = subprocess.run(
            [*GITHUB_BASH, str(script)],
            cwd=runner.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        log.append(result.stdout + result.stderr)
        steps[step["id"]] = _read_outputs(output_file)
        if result.returncode != 0:
            return ActionRun(steps, step["id"], result.returncode, "".join(log))
    return ActionRun(steps, None, 0, "".join(log))


def _action_checkout(target: Path) -> Path:
    """What ``uses: OWNER/cacheinspect@REF`` checks out, as far as installing needs it."""
    for name in ("action.yml", "pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, target / name)
    shutil.copytree(
        REPO_ROOT / "inspector", target / "inspector", ignore=shutil.ignore_patterns("__pycache__")
    )
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    """The action's checkout and the outputs of its setup-python and install steps, run once."""
    checkout = _action_checkout(tmp_path_factory.mktemp("action"))
    runner = Runner(tmp_path_factory.mktemp("install-runner"))
    # a fresh runner temp directory per module: the install step puts the venv there
    run = run_action(runner, checkout, {"command": "show"}, only=("python", "install"))
    assert run.failed is None, run.log
    bin_dir = Path(run.steps["install"]["bin"])
    assert bin_dir.parent.parent == runner.root / "runner-temp"
    return checkout, {"python": run.steps["python"], "install": run.steps["install"]}


def run_command(
    tmp_path: Path, installed: tuple[Path, dict[str, dict[str, str]]], **with_: str
) -> tuple[ActionRun, Runner]:
    checkout, done = installed
    runner = Runner(tmp_path)
    return run_action(runner, checkout, with_, only=("run", "decide"), done=done), runner


def test_action_installs_the_tool_from_its_own_checkout(
    installed: tuple[Path, dict[str, dict[str, str]]],
) -> None:
    _, done = installed
    bin_dir = Path(done["install"]["bin"])
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import inspector; print(inspector.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=bin_dir,
    ).stdout.strip()
    # installed (not editable) into the venv: neither this worktree nor the checkout is imported
    assert Path(where).is_relative_to(bin_dir.parent), where
    assert (bin_dir / "cacheinspect").is_file()


def test_action_probe_writes_outputs_and_the_summary(
    registry: LocalRegistry,
    samples: list[dict[str, Any]],
    installed: tuple[Path, dict[str, dict[str, str]]],
    tmp_path: Path,
) -> None:
    repo = f"{registry.host}/ci/action-probe"
    # probe never creates a repository (exit 3 when it is missing): a first build's cache makes it
    seed_sample(registry.host, "ci/action-probe", next(s for s in samples if s["name"] == "multistage-min"))
    run, runner = run_command(
        tmp_path,
        installed,
        command="probe",
        **{"cache-to": f"type=registry,ref={repo}:main-buildcache,mode=max"},
    )
    assert run.failed is None, run.log
    # distribution 2.8.2 stores an OCI image manifest whatever its config's media type, and mode=max with
    # no other attribute is BuildKit's image-manifest form (>= 0.21 default): probe says works, exit 0
    assert run.output("exit-code") == "0"
    assert run.output("verdict") == "works"
    document = json.loads(Path(run.output("report")).read_text(encoding="utf-8"))
    assert document["exitCode"] == 0 and document["cacheTo"]["verdict"] == "works"
    summary = runner.summary.read_text(encoding="utf-8")
    assert summary.startswith(f"## cacheinspect probe `{repo}`")  # the CLI's own summary
    assert "Traceback" not in run.log


def test_action_show_verdict_and_fail_on(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    installed: tuple[Path, dict[str, dict[str, str]]],
    tmp_path: Path,
) -> None:
    healthy, _ = run_command(
        tmp_path / "healthy",
        installed,
        command="show",
        ref=f"{registry.host}/samples/multistage-max:image-manifest",
    )
    assert healthy.failed is None, healthy.log
    assert (healthy.output("exit-code"), healthy.output("verdict")) == ("0", "healthy")

    # testdata's missing-blob sample is pushed without one of its layer blobs: blob-missing (error), so the
    # cache is unhealthy, and --strict makes that exit 10 (docs/exit-codes.md)
    ref = f"{registry.host}/samples/missing-blob:latest"
    strict, runner = run_command(tmp_path / "strict", installed, command="show", ref=ref, args="--strict")
    assert (strict.failed, strict.code) == ("decide", 10), strict.log
    assert (strict.output("exit-code"), strict.output("verdict")) == ("10", "unhealthy")
    assert "::error::cacheinspect exited 10 (fail-on: any)" in strict.log
    summary = runner.summary.read_text(encoding="utf-8")
    assert summary.startswith(f"## cacheinspect show `{ref}`\n\n**unhealthy**: `blob-missing` (error)")

    checkout, done = installed
    for fail_on, fails in (
        ("never", False),
        ("2 3 4", False),
        ("2,10", True),
        ("10", True),
        ("any", True),
        ("any except 10", False),
        ("any except 7, 9", True),
    ):
        decided = run_action(
            Runner(tmp_path / f"decide-{fail_on}"),
            checkout,
            {"command": "show", "fail-on": fail_on},
            only=("decide",),
            done={**done, "run": strict.steps["run"]},
        )
        assert (decided.failed is not None) == fails, (fail_on, decided.log)
        assert decided.code == (10 if fails else 0)
    # neither a keyword nor exit codes: refused, never read as "never fail"
    for typo in ("nevr", "2;10", "any 10", "", "any except", "except 7", "never except 7"):
        refused = run_action(
            Runner(tmp_path / "typo"),
            checkout,
            {"command": "show", "fail-on": typo},
            only=("decide",),
            done={**done, "run": strict.steps["run"]},
        )
        assert (refused.failed, refused.code) == ("decide", 2), (typo, refused.log)
        assert f"fail-on is any, never, exit codes or 'any except' codes, not '{typo}'" in refused.log


def test_action_gc_dry_run_splits_args_like_a_shell(
    registry: LocalRegistry, installed: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    seed_gc_demo(registry.host)
    runner = Runner(tmp_path)
    runner.workspace.mkdir(parents=True)
    (runner.workspace / "branches.txt").write_text("main\nfeature/a\n", encoding="utf-8")
    run, _ = run_command(
        tmp_path,
        installed,
        command="gc",
        ref=f"{registry.host}/demo/app-cache",
        args="-t '{branch}-buildcache' --protect main --branches-file branches.txt",
    )
    assert run.failed is None, run.log
    # no --apply: a dry run, which deletes nothing and exits 0 (docs/gc.md#exit-codes)
    assert (run.output("exit-code"), run.output("verdict")) == ("0", "planned")
    document = json.loads(Path(run.output("report")).read_text(encoding="utf-8"))
    assert document["mode"] == "dry-run"
    # the quoted template reached gc as one word: gone-buildcache and pr-7-buildcache have no live branch
    tags = {t["tag"]: t["action"] for t in document["repositories"][0]["tags"]}
    assert tags["gone-buildcache"] == "delete" and tags["main-buildcache"] == "keep"
    assert runner.summary.read_text(encoding="utf-8").startswith("## cacheinspect gc (dry-run)")

    # the same rules from a policy file (the `policy` input), its branches file relative to it
    (runner.workspace / "cache-gc.toml").write_text(
        "version = 1\n[defaults]\n"
        'tag-templates = ["{branch}-buildcache"]\nprotect = ["main"]\nbranches-file = "branches.txt"\n'
        f'[[repository]]\nname = "{registry.host}/demo/app-cache"\n',
        encoding="utf-8",
    )
    # and sharded as the nightly example runs it: one shard of one holds every repository
    by_policy, _ = run_command(
        tmp_path, installed, command="gc", policy="cache-gc.toml", args="--shard 0/1 --time-budget 25m"
    )
    assert by_policy.failed is None, by_policy.log
    assert (by_policy.output("exit-code"), by_policy.output("verdict")) == ("0", "planned")
    planned = json.loads(Path(by_policy.output("report")).read_text(encoding="utf-8"))
    assert {t["tag"]: t["action"] for t in planned["repositories"][0]["tags"]} == tags
    assert planned["discovery"]["shard"] == "0/1" and planned["discovery"]["planned"] == 1


def test_action_errors_are_one_line_and_a_verdict(
    registry: LocalRegistry, installed: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    missing, _ = run_command(
        tmp_path / "missing", installed, command="show", ref=f"{registry.host}/ci/nothing:here"
    )
    assert (missing.output("exit-code"), missing.output("verdict")) == ("3", "error")  # not found: exit 3
    assert (missing.failed, missing.code) == ("decide", 3)

    unbalanced, _ = run_command(tmp_path / "quote", installed, command="show", ref="x", args="--strict 'open")
    assert unbalanced.failed == "run" and unbalanced.code != 0
    assert "::error::cacheinspect action: args: No closing quotation" in unbalanced.log
    assert "Traceback" not in unbalanced.log

    # shell syntax in args or ref is data: split into words, never run
    injected, runner = run_command(
        tmp_path / "inject",
        installed,
        command="show",
        ref="$(touch ref-ran)",
        args='"$(touch args-ran)" `touch x`',
    )
    assert injected.output("verdict") == "error" and injected.output("exit-code") == "2"  # a bad reference
    assert not list(runner.workspace.iterdir()), "something in the inputs ran"

    wrong, _ = run_command(tmp_path / "wrong", installed, command="du", ref="x")
    assert (wrong.failed, wrong.code) == ("run", 2)
    assert "::error::cacheinspect action: command must be probe, gc or show, not 'du'" in wrong.log


# -- the workflow examples -----------------------------------------------------------------------------------


def _steps(workflow: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for job in workflow["jobs"].values():
        yield from job["steps"]


@pytest.mark.parametrize("path", GITHUB_EXAMPLES, ids=lambda p: p.name)
def test_github_examples_use_the_action_as_declared(path: Path) -> None:
    workflow = load_yaml(path)
    declared = action()["inputs"]
    ours = [s for s in _steps(workflow) if s.get("uses", "").endswith("/cacheinspect@v0")]
    assert ours, f"{path.name} does not use the action"
    for step in ours:
        given = step["with"]
        assert set(given) <= set(declared), (
            f"{path.name}: inputs the action lacks: {set(given) - set(declared)}"
        )
        assert given["command"] in ("probe", "gc", "show")
        args = [given["command"], *([given["ref"]] if "ref" in given else [])]
        if "cache-to" in given:
            args += ["--cache-to", given["cache-to"]]
        if "policy" in given:
            args += ["--policy", given["policy"]]
        for words in cacheinspect_invocations("cacheinspect " + given.get("args", "")):
            check_invocation(args + words, path.name)
    for step in _steps(workflow):
        for line in str(step.get("run", "")).splitlines():
            for words in cacheinspect_invocations(line):
                check_invocation(words, path.name)


def test_nightly_gc_matrix_covers_every_shard_once() -> None:
    workflow = load_yaml(REPO_ROOT / "examples" / "github" / "nightly-gc.yml")
    job = workflow["jobs"]["gc"]
    shards = job["strategy"]["matrix"]["shard"]
    gc = next(s for s in job["steps"] if s.get("with", {}).get("command") == "gc")
    found = re.search(r"--shard \$\{\{ matrix\.shard \}\}/(\d+)", gc["with"]["args"])
    assert found, "gc takes --shard ${{ matrix.shard }}/N"
    # --shard K/N is 0-based: the matrix must list 0 .. N-1, each once
    assert shards == list(range(int(found.group(1))))
    assert "--time-budget 25m" in gc["with"]["args"]
    assert job["strategy"]["fail-fast"] is False
    assert gc["with"]["fail-on"] == "any except 7"  # 7: work left, the next night continues


# -- GitLab -------------------------------------------------------------------------------------------------


def test_gitlab_template_has_hidden_jobs_with_scripts() -> None:
    template = load_yaml(GITLAB_TEMPLATE)
    assert all(name.startswith(".") for name in template), "an included template must add no job of its own"
    for name in (".cacheinspect-probe", ".cacheinspect-gc"):
        job = template[name]
        assert job["extends"] == ".cacheinspect" and job["script"] and job["variables"]
    assert template[".cacheinspect"]["image"]["entrypoint"] == [""]
    assert template[".cacheinspect-gc"]["allow_failure"] == {"exit_codes": [7]}
    example = load_yaml(GITLAB_EXAMPLE)
    assert example["include"][0]["file"] == str(GITLAB_TEMPLATE.relative_to(REPO_ROOT))
    assert example["cache-preflight"]["extends"] == ".cacheinspect-probe"
    assert example["cache-gc"]["extends"] == ".cacheinspect-gc" and example["cache-gc"]["parallel"] == 4
    for name, job in example.items():
        if isinstance(job, dict) and not name.startswith(".") and name not in ("include", "stages"):
            assert "script" in job or "extends" in job, name


def _gitlab_arguments(tmp_path: Path, job_name: str, variables: Mapping[str, str]) -> list[str]:
    """A template job's script run by ``sh`` (POSIX: GitLab takes bash where the image has it, else sh), with
    ``cacheinspect`` and ``git`` as stubs; the arguments cacheinspect got. ``variables`` win over the job's."""
    template = load_yaml(GITLAB_TEMPLATE)
    job = template[job_name]
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    record = tmp_path / "args"
    for name in ("cacheinspect", "git"):
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\n[ "$(basename "$0")" = git ] || printf "%s\\n" "$@" > "{record}"\n')
        stub.chmod(0o755)
    predefined = {
        "CI_REPOSITORY_URL": "https://gitlab.example.com/acme/app.git",
        "CI_REGISTRY_IMAGE": "registry.gitlab.example.com/acme/app",
        "CI_COMMIT_REF_SLUG": "feature-a",
    }
    declared = {k: str(v) for k, v in {**template[".cacheinspect"]["variables"], **job["variables"]}.items()}
    # GitLab expands $VAR and ${VAR} in a variable's value (predefined variables included) before the script runs
    declared = {
        k: re.sub(r"\$\{?(\w+)\}?", lambda m: predefined.get(m.group(1), m.group(0)), v)
        for k, v in declared.items()
    }
    env = {"PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", **predefined, **declared, **variables}
    for line in job["script"]:
        subprocess.run(["sh", "-e", "-c", line], env=env, cwd=tmp_path, check=True)
    return record.read_text(encoding="utf-8").splitlines()


def test_gitlab_parallel_node_index_becomes_a_zero_based_shard(tmp_path: Path) -> None:
    example = {k: str(v) for k, v in load_yaml(GITLAB_EXAMPLE)["cache-gc"]["variables"].items()}
    shards = []
    for node in (1, 2, 3, 4):  # GitLab's CI_NODE_INDEX is 1-based, up to CI_NODE_TOTAL
        variables = {**example, "CI_NODE_INDEX": str(node), "CI_NODE_TOTAL": "4"}
        args = _gitlab_arguments(tmp_path, ".cacheinspect-gc", variables)
        shards.append(args[args.index("--shard") + 1])
        assert args[args.index("--time-budget") + 1] == "25m"  # the example's CACHEINSPECT_ARGS
        check_invocation(args, "the GitLab example's gc job")
    assert shards == ["0/4", "1/4", "2/4", "3/4"]
    alone = _gitlab_arguments(
        tmp_path, ".cacheinspect-gc", {}
    )  # no `parallel:`: GitLab sets neither variable
    assert "--shard" not in alone
    assert alone[:3] == ["gc", "--policy", ".gitlab/cache-gc.toml"] and "--apply" in alone


def test_gitlab_probe_job_checks_the_cache_to_of_this_ref(tmp_path: Path) -> None:
    args = _gitlab_arguments(
        tmp_path, ".cacheinspect-probe", {"CACHEINSPECT_ARGS": "--buildkit-version 0.21"}
    )
    check_invocation(args, "the GitLab template's probe job")
    # CACHE_TO's default is expanded by GitLab from CI_REGISTRY_IMAGE and CI_COMMIT_REF_SLUG; sh does it here
    cache_to = "type=registry,ref=registry.gitlab.example.com/acme/app/cache:feature-a-buildcache,mode=max"
    assert args == [
        "probe",
        "--cache-to",
        cache_to,
        "--junit",
        "probe.xml",
        "--buildkit-version",
        "0.21",
        "--json",
    ]


# -- Kubernetes ---------------------------------------------------------------------------------------------


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> document, from every YAML file of deploy/kubernetes/ but the kustomization."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def expand_kubernetes(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of command and args (third_party/forked/golang/expansion): a declared
    variable is replaced, ``$$`` is a ``$``, anything else stays as written."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def _container() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    cronjob = manifests()[("CronJob", "cacheinspect-gc")]
    job = cronjob["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    return job, pod, container


def test_kubernetes_files_parse_and_the_kustomization_lists_them() -> None:
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    kinds = {kind for kind, _ in manifests()}
    assert kinds == {"CronJob", "Secret", "ConfigMap"}
    for document in manifests().values():
        assert document["apiVersion"] in ("v1", "batch/v1")


def test_kubernetes_cronjob_is_an_indexed_job_of_shards() -> None:
    cronjob = manifests()[("CronJob", "cacheinspect-gc")]
    assert cronjob["apiVersion"] == "batch/v1" and cronjob["spec"]["schedule"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    job, pod, container = _container()
    assert job["completionMode"] == "Indexed"
    shards = job["completions"]
    assert isinstance(shards, int) and 1 <= job["parallelism"] <= shards
    assert pod["restartPolicy"] == "Never"  # required by podFailurePolicy
    args = container["args"]
    assert args[args.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{shards}"
    # $(VAR) expands only for variables the container declares; every one used in args is declared
    declared = {variable["name"]: variable for variable in container["env"]}
    for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(args)):
        assert name in declared, f"$({name}) would stay as written: not in the container's env"
    index_source = declared["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert index_source == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    # each pod k of 0 .. completions-1 gets shard k/N: disjoint, and together every shard
    expanded = [
        [expand_kubernetes(arg, {"JOB_COMPLETION_INDEX": str(k)}) for arg in args] for k in range(shards)
    ]
    assert [a[a.index("--shard") + 1] for a in expanded] == [f"{k}/{shards}" for k in range(shards)]
    check_invocation(expanded[0], "deploy/kubernetes/cronjob.yaml")
    rules = job["podFailurePolicy"]["rules"]
    assert all(r["onExitCodes"]["containerName"] == container["name"] for r in rules)
    assert 7 not in rules[0]["onExitCodes"]["values"]  # partly done: a retry continues


def test_kubernetes_pod_is_locked_down_as_the_image_allows() -> None:
    _, pod, container = _container()
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    user, group = _runtime_user()
    assert (security["runAsUser"], security["runAsGroup"]) == (user, group)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    requests = container["resources"]["requests"]
    assert set(requests) == {"cpu", "memory"}
    assert pod["automountServiceAccountToken"] is False


def test_kubernetes_policy_and_credentials_are_where_the_tool_reads_them(tmp_path: Path) -> None:
    found = manifests()
    _, pod, container = _container()
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    args = container["args"]
    env = {v["name"]: v.get("value") for v in container["env"]}

    # the policy: --policy names the ConfigMap's key inside its mount, and it loads
    policy_path = Path(args[args.index("--policy") + 1])
    (policy_volume,) = [n for n, v in volumes.items() if "configMap" in v]
    assert policy_path.parent == Path(mounts[policy_volume])
    configmap = found[("ConfigMap", volumes[policy_volume]["configMap"]["name"])]
    local_policy = tmp_path / policy_path.name
    local_policy.write_text(configmap["data"][policy_path.name], encoding="utf-8")
    policy = load_policy(local_policy)
    hosts = {parse_repository(name).registry for name, _ in policy.repositories}
    assert hosts == {"ghcr.io"}

    # the registry Secret: mounted as $DOCKER_CONFIG/config.json, which the tool reads (docs/auth.md)
    (auth_volume,) = [n for n, v in volumes.items() if "secret" in v]
    secret = found[("Secret", volumes[auth_volume]["secret"]["secretName"])]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    (item,) = volumes[auth_volume]["secret"]["items"]
    assert item["key"] == ".dockerconfigjson" and item["path"] == "config.json"
    assert env["DOCKER_CONFIG"] == mounts[auth_volume]
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    (config_dir / item["path"]).write_text(secret["stringData"][item["key"]], encoding="utf-8")
    credentials = resolve_credentials("ghcr.io", env={"DOCKER_CONFIG": str(config_dir)})
    assert credentials is not None and credentials.username == "cache-gc"  # base64 of cache-gc:REPLACE-…

    token = next(v for v in container["env"] if v["name"] == "GH_TOKEN")["valueFrom"]["secretKeyRef"]
    assert token["key"] in found[("Secret", token["name"])]["stringData"] and token["optional"] is True


# -- the container image --------------------------------------------------------------------------------------


def _stages() -> list[tuple[str, list[dockerfile.Command]]]:
    """The Dockerfile's stages by BuildKit's parser: (name, its instructions)."""
    stages: list[tuple[str, list[dockerfile.Command]]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            words = command.value
            stages.append((words[2] if len(words) == 3 and words[1].upper() == "AS" else "", []))
        elif stages:
            stages[-1][1].append(command)
    return stages


def _runtime_user() -> tuple[int, int]:
    """The numeric USER of the last stage (what the image runs as)."""
    _, commands = _stages()[-1]
    users = [c.value[0] for c in commands if c.cmd == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and group.isdigit(), "a numeric UID:GID lets runAsNonRoot check it"
    return int(user), int(group)


def test_dockerfile_runtime_is_slim_and_non_root() -> None:
    stages = _stages()
    assert [name for name, _ in stages] == ["build", "runtime"]
    user, group = _runtime_user()
    assert user != 0 and group != 0
    _, runtime = stages[-1]
    entrypoint = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    assert entrypoint and entrypoint[-1].json and entrypoint[-1].value == ("cacheinspect",)
    froms = [c.value[0] for c in dockerfile.parse_file(str(DOCKERFILE)) if c.cmd == "FROM"]
    assert froms == ["python:${PYTHON_VERSION}-slim"] * 2
    # the runtime copies only the built environment from the build stage
    copies = [c for c in runtime if c.cmd == "COPY"]
    assert [c.flags for c in copies] == [("--from=build",)]


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore, for the patterns used here: the last matching pattern wins, ``!`` re-includes, a pattern
    that matches a directory covers what is under it (moby/patternmatcher)."""
    import fnmatch

    ignored = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").removeprefix("**/")
        anywhere = pattern.removeprefix("!").startswith("**/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        candidates = parts if anywhere else prefixes
        if any(fnmatch.fnmatchcase(c, body) and "/" not in c.replace(body, "") for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_dockerfile_copies() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for needed in (
        "pyproject.toml",
        "README.md",
        "inspector/__init__.py",
        "inspector/schemas/show.schema.json",
    ):
        assert not _ignored(needed, patterns), needed
    for left_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "inspector/__pycache__/x.pyc",
        "build/x",
    ):
        assert _ignored(left_out, patterns), left_out


def _show_json(args: list[str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "inspector", *args, "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_show_reads_our_dockerfile_against_a_seeded_cache(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    """A cache built from another Dockerfile: ours parses, and its steps are counted as BuildKit counts them.

    By hand: build has WORKDIR, two COPY and one RUN (4 steps; ARG makes none), runtime one RUN and one COPY
    (2; ENV, USER, ENTRYPOINT and CMD make none): 6 steps.
    """
    document = _show_json(
        ["show", f"{registry.host}/samples/named-build:latest", "--dockerfile", "Dockerfile"]
    )
    assert any("of the Dockerfile's 6 steps" in note for note in document["notes"]), document["notes"]


def test_show_names_every_stage_of_our_dockerfile(registry: LocalRegistry, tmp_path: Path) -> None:
    """The cache BuildKit would export for our Dockerfile (the fixture generator, over a stand-in base), pushed
    to the registry: show --dockerfile names both stages and every step.

    Expected labels by hand, as BuildKit prints them ``[stage k/n]`` (FROM is 1): build 5 (FROM, WORKDIR, COPY,
    COPY, RUN), runtime 3 (FROM, RUN, COPY); the base is ``python:3.11-slim`` (ARG PYTHON_VERSION's default).
    """
    text = DOCKERFILE.read_text(encoding="utf-8")
    build = from_dockerfile(text, bases={"docker.io/library/python:3.11-slim": make_testdata.ALPINE_320})
    export = build.export()
    layout = tmp_path / "layout"
    write_layout(layout, [export.cache.layout_entry("latest", "image-manifest")], export.cache.layout_blobs())
    seed_sample(registry.host, "ci/own-dockerfile", {"layout": str(layout), "tags": ["latest"]})

    document = _show_json(["show", f"{registry.host}/ci/own-dockerfile:latest", "--dockerfile", "Dockerfile"])
    assert [(s["name"], s["basis"]) for s in document["stages"]] == [
        ("build", "matched"),
        ("runtime", "matched"),
    ]
    labels = [step["instruction"] for stage in document["stages"] for step in stage["steps"]]
    assert labels[:3] == [
        "[build 2/5] WORKDIR /src",
        "[build 3/5] COPY pyproject.toml README.md ./",
        "[build 4/5] COPY inspector ./inspector",
    ]
    assert labels[3].startswith("[build 5/5] RUN pip wheel ")
    assert labels[4].startswith("[runtime 2/3] RUN apt-get update ")
    assert labels[5] == "[runtime 3/3] COPY --from=build /opt/cacheinspect /opt/cacheinspect"
    assert all(stage["base"]["name"] == "python:3.11-slim" for stage in document["stages"]), document[
        "stages"
    ]
    assert document["health"]["ok"] is True
