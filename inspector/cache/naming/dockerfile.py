"""What a Dockerfile asks BuildKit to build: stages, steps and their progress labels.

Parsing uses BuildKit's own parser (the ``dockerfile`` package wraps it); the
rest follows ``frontend/dockerfile/dockerfile2llb/convert.go``:

* a stage is named by ``AS name``, else ``stage-<index>``;
* its total ``n`` counts 1 for ``FROM`` an external image (not scratch, not
  another stage), plus one per ``RUN``/``COPY``/``ADD``/``WORKDIR``;
* a step's label is ``[stage k/n] TEXT`` (``[platform stage k/n]`` for
  multi-platform builds) where TEXT is the instruction with its variables
  expanded and its command word uppercased;
* only the stages the target needs are built.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from inspector.errors import UsageError

if TYPE_CHECKING:
    import dockerfile

__all__ = ["BaseConfig", "BuildPlan", "PlannedStage", "PlannedStep", "StepKind", "expand", "plan_dockerfile"]

StepKind = Literal["RUN", "COPY", "ADD", "WORKDIR"]
BaseKind = Literal["image", "stage", "scratch"]
_STEP_KINDS: dict[str, StepKind] = {"RUN": "RUN", "COPY": "COPY", "ADD": "ADD", "WORKDIR": "WORKDIR"}


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One instruction that becomes an LLB op, so a cache record."""

    stage: str
    kind: StepKind
    text: str
    number: int
    total: int
    line: int
    from_stage: str | None = None
    from_image: str | None = None
    link: bool = False
    context_input: bool = False
    root_selector: bool = False
    shown_stage: str | None = None  # a Dockerfile with one stage prints no stage name (convert.go)
    # What BuildKit's op for the step is built from (cache/naming/keys.py):
    args: tuple[str, ...] = ()  # the instruction's words after its flags (shell form: one string)
    flags: tuple[str, ...] = ()
    json_form: bool = False  # exec form (`RUN ["a", "b"]`)
    heredoc: bool = False
    workdir: str = ""  # the directory the step runs in (for WORKDIR: the one it creates); "" when never set
    env_ops: tuple[tuple[str, str], ...] = ()  # ENV/ARG settings since the root image, unexpanded, in order
    user: str = ""  # the last USER since the root image ("" when none)
    shell: tuple[str, ...] = ()  # the last SHELL since the root image (() when none)
    root_image: str | None = None  # the image at the root of the stage chain (None: scratch)
    on_scratch: bool = False  # the first op on an empty (scratch) state: its file op has no base input

    def label(self, platform: str | None = None) -> str:
        width = len(str(self.total))
        prefix = f"{platform} " if platform else ""
        stage = self.stage if self.shown_stage is None else self.shown_stage
        name = f"{stage} " if stage else ""
        return f"[{prefix}{name}{self.number:>{width}}/{self.total}] {self.text}"


@dataclass(frozen=True, slots=True)
class PlannedStage:
    index: int
    name: str
    named: bool
    base_kind: BaseKind
    base_ref: str | None
    base_stage: str | None
    line: int
    total: int
    steps: tuple[PlannedStep, ...]
    scope: Mapping[str, str] = field(
        default_factory=dict
    )  # ENV/ARG values at its end (a FROM stage inherits)
    workdir: str = "/"  # working directory at its end
    env_ops: tuple[tuple[str, str], ...] = ()  # at its end, see PlannedStep
    user: str = ""
    shell: tuple[str, ...] = ()
    root_image: str | None = None
    dir_set: bool = False  # a WORKDIR ran (else the directory is the base config's WorkingDir)
    empty: bool = False  # its state is scratch: no op ran since FROM scratch


@dataclass(frozen=True, slots=True)
class BaseConfig:
    """What a base image's config contributes to labels and cache keys: ``Env``, ``WorkingDir``, ``User``, ``Shell``."""

    env: Mapping[str, str]  # in the config's order (BuildKit keeps it for RUN)
    workdir: str = ""
    user: str = ""
    shell: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BuildPlan:
    stages: tuple[PlannedStage, ...]
    target: str

    def stage(self, name: str) -> PlannedStage:
        return next(s for s in self.stages if s.name == name)


# convert.go nonEnvArgs: ARGs that never enter a RUN's environment.
_NON_ENV_ARGS = frozenset({"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"})


@dataclass(frozen=True, slots=True)
class _KeyState:
    """The build state a step's op is made from, captured when the step is met."""

    workdir: str
    env_ops: tuple[tuple[str, str], ...]
    user: str
    shell: tuple[str, ...]


# instructions/parse.go ParseInstruction: any other command word is an UnknownInstructionError.
_INSTRUCTIONS = frozenset(
    [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
)
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-_.]*$")  # parse.go validStageName


def _check_instruction(command: dockerfile.Command, name: str) -> None:
    """Reject what ``instructions/parse.go`` rejects, with its message and line (``parseError``)."""
    problem = None
    if command.cmd not in _INSTRUCTIONS:
        problem = f"unknown instruction: {command.cmd}"
    elif command.cmd == "FROM":  # parseBuildStageName
        args = command.value
        if len(args) == 3 and args[1].upper() == "AS":
            if not _STAGE_NAME_RE.match(args[2].lower()):
                problem = f"invalid name for build stage: {args[2]!r}, name can't start with a number or contain symbols"
        elif len(args) != 1:
            problem = "FROM requires either one or three arguments"
    if problem is not None:
        raise UsageError(f"{name}: dockerfile parse error on line {command.start_line}: {problem}")


_VAR_RE = re.compile(r"\\\$|\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(word: str, env: Mapping[str, str], *, keep_unset: bool) -> str:
    """Shell-style ``$VAR``/``${VAR}``/``${VAR:-d}``/``${VAR:+a}`` expansion as BuildKit's shlex does it.

    ``keep_unset`` leaves unknown variables as written (progress labels, ``SkipUnsetEnv``);
    otherwise they expand to the empty string (``FROM`` lines).
    """

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "\\$":
            return "$" if not keep_unset else whole
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        value = env.get(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return expand(arg, env, keep_unset=keep_unset)
            return value
        if op in (":+", "+"):
            if value is None or (op == ":+" and value == ""):
                return ""
            return expand(arg, env, keep_unset=keep_unset)
        if value is None:
            return whole if keep_unset else ""
        return value

    return _VAR_RE.sub(replace, word)


def _flag(flags: tuple[str, ...], name: str) -> str | None:
    for flag in flags:
        if flag == f"--{name}":
            return "true"
        if flag.startswith(f"--{name}="):
            return flag.split("=", 1)[1]
    return None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _key_values(command: str, values: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """``ENV`` comes parsed as key, value pairs; ``ARG`` as ``k=v`` / ``k`` words."""
    if command == "ENV":
        return [(_unquote(values[i]), _unquote(values[i + 1])) for i in range(0, len(values) - 1, 2)]
    out: list[tuple[str, str | None]] = []
    for value in values:
        key, eq, val = value.partition("=")
        out.append((key, _unquote(val) if eq else None))
    return out


def _mount_from(flags: tuple[str, ...]) -> tuple[str | None, bool]:
    """Stage a ``RUN --mount`` reads from, and whether one binds the build context."""
    source: str | None = None
    context = False
    for flag in flags:
        if not flag.startswith("--mount="):
            continue
        options = dict(part.partition("=")[::2] for part in flag[len("--mount=") :].split(","))
        kind = options.get("type", "bind")
        if kind not in ("bind", "cache"):
            continue
        if options.get("from"):
            source = options["from"]
        elif kind == "bind":
            context = True
    return source, context


def _platform_args(platform: str | None) -> dict[str, str]:
    """BuildKit's automatic ARGs for a target platform (the build platform is taken to be the same)."""
    if not platform:
        return {}
    os_name, _, rest = platform.partition("/")
    arch, _, variant = rest.partition("/")
    out: dict[str, str] = {}
    for prefix in ("TARGET", "BUILD"):
        out |= {
            f"{prefix}PLATFORM": platform,
            f"{prefix}OS": os_name,
            f"{prefix}ARCH": arch,
            f"{prefix}VARIANT": variant,
        }
    return out


def normalize_workdir(current: str, requested: str) -> str:
    """``util/system`` NormalizeWorkdir on Linux: relative to the current one, then Go's ``path.Clean``."""
    joined = posixpath.join(current or "/", requested or current or "/")
    return "/" + posixpath.normpath(joined).lstrip("/")


def plan_dockerfile(
    text: str,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    platform: str | None = None,
    name: str = "Dockerfile",
    base_configs: Mapping[str, BaseConfig] | None = None,
) -> BuildPlan:
    """Parse a Dockerfile into the stages and steps BuildKit would run for ``target`` (default: last).

    ``platform`` (``os/arch[/variant]``) sets BuildKit's automatic platform ARGs
    (``TARGETARCH`` …); without it they stay unexpanded in labels. ``name`` is the
    file named in parse errors. ``base_configs`` (by ``FROM`` reference, once
    resolved) give the base images' ``Env`` and ``WorkingDir``, which labels expand.
    """
    import dockerfile

    try:  # the parser's Go binding crashes the process on a lone surrogate: refuse it here
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"{name}: not UTF-8 text (character {exc.start})") from None
    try:
        commands = dockerfile.parse_string(text)
    except (dockerfile.GoParseError, ValueError) as exc:
        raise UsageError(f"{name}: cannot parse the Dockerfile: {exc}") from None
    for command in commands:
        _check_instruction(command, name)
    overrides = dict(build_args or {})
    automatic = _platform_args(platform)
    global_args: dict[str, str] = dict(automatic)
    raw_stages: list[tuple[dockerfile.Command, list[dockerfile.Command]]] = []
    for command in commands:
        if command.cmd == "FROM":
            raw_stages.append((command, []))
        elif raw_stages:
            raw_stages[-1][1].append(command)
        elif command.cmd == "ARG":
            for key, value in _key_values("ARG", command.value):
                if key in overrides:
                    global_args[key] = overrides[key]
                elif value is not None:
                    global_args[key] = expand(value, global_args, keep_unset=False)
    if not raw_stages:
        raise UsageError("the Dockerfile has no FROM instruction")

    names: dict[str, int] = {}
    stages: list[PlannedStage] = []
    for index, (from_command, body) in enumerate(raw_stages):
        values = list(from_command.value)
        named = len(values) >= 3 and values[-2].upper() == "AS"
        name = values[-1].lower() if named else f"stage-{index}"
        base = expand(values[0], global_args, keep_unset=False)
        if base.lower() == "scratch":
            base_kind: BaseKind = "scratch"
            base_ref, base_stage = None, None
        elif base.lower() in names:
            base_kind, base_ref, base_stage = "stage", None, base.lower()
        else:
            base_kind, base_ref, base_stage = "image", base, None
        # A stage FROM another continues its state: ENV, ARGs (convert.go appends base.buildArgs) and WORKDIR;
        # FROM an image starts from that image's config when it is known (Env, WorkingDir).
        if base_stage is not None:
            parent = stages[names[base_stage]]
            env, workdir = dict(parent.scope), parent.workdir
            env_ops, user, shell, root_image = (
                list(parent.env_ops),
                parent.user,
                parent.shell,
                parent.root_image,
            )
            dir_set, empty = parent.dir_set, parent.empty
        else:
            env_ops, user, shell, root_image = [], "", (), base_ref
            dir_set, empty = False, base_kind == "scratch"
            config = (base_configs or {}).get(base_ref or "")
            env = dict(config.env) if config is not None else {}
            workdir = normalize_workdir("/", config.workdir) if config is not None else "/"
        pending: list[tuple[StepKind, dockerfile.Command, dict[str, str], _KeyState]] = []
        no_op_workdirs = 0
        for command in body:
            if command.cmd in ("ENV", "ARG"):
                for key, value in _key_values(command.cmd, command.value):
                    if command.cmd == "ARG":
                        default = global_args.get(key, automatic.get(key)) if value is None else value
                        value = overrides.get(key, default)
                    if value is not None:
                        env[key] = expand(value, env, keep_unset=True)
                        if key in _NON_ENV_ARGS:
                            pass
                        elif command.cmd == "ARG" and key in overrides:  # a --build-arg is taken literally
                            env_ops.append((key, overrides[key].replace("$", "\\$")))
                        else:
                            env_ops.append((key, value))
            elif command.cmd == "USER" and command.value:
                user = expand(command.value[0], env, keep_unset=False)
            elif command.cmd == "SHELL" and command.value:
                shell = tuple(command.value)
            elif command.cmd in _STEP_KINDS:
                if command.cmd == "WORKDIR":
                    # dispatchWorkdir: the path is normalised (NormalizeWorkdir, path.Clean) and only a
                    # directory other than "/" makes a Mkdir op; "/" is counted in the total but takes no number.
                    requested = expand(command.value[0] if command.value else "", env, keep_unset=False)
                    workdir = normalize_workdir(workdir, requested)
                    dir_set = True
                    if workdir == "/":
                        no_op_workdirs += 1
                        continue
                state = _KeyState(workdir if dir_set else "", tuple(env_ops), user, shell)
                pending.append((_STEP_KINDS[command.cmd], command, dict(env), state))
        total = len(pending) + no_op_workdirs + (1 if base_kind == "image" else 0)
        planned: list[PlannedStep] = []
        first_on_scratch = empty and bool(pending)
        for position, (kind, command, scope, state) in enumerate(pending):
            first_line = command.original.split("\n", 1)[0] if command.heredocs else command.original
            shown = expand(first_line, scope, keep_unset=True)
            word, _, rest = shown.partition(" ")
            shown = word.upper() + (" " + rest if rest else "")
            from_value = _flag(command.flags, "from") if kind in ("COPY", "ADD") else None
            mount_from, binds_context = _mount_from(command.flags) if kind == "RUN" else (None, False)
            source = from_value or mount_from
            from_stage = None
            from_image = None
            if source is not None:
                source = expand(source, scope | global_args, keep_unset=False)
                if source.lower() in names:
                    from_stage = source.lower()
                elif source.isdigit() and int(source) < index:
                    from_stage = stages[int(source)].name
                else:
                    from_image = source
            planned.append(
                PlannedStep(
                    stage=name,
                    kind=kind,
                    text=shown,
                    number=position + 1 + (1 if base_kind == "image" else 0),
                    total=total,
                    line=command.start_line,
                    from_stage=from_stage,
                    from_image=from_image,
                    # convert_copy.go dispatchCopy: a MergeOp only when `cfg.link && cfg.chmod == ""`
                    # (the same condition from v0.10 to v0.32); with --chmod the copy is a plain FileOp.
                    link=kind in ("COPY", "ADD")
                    and _flag(command.flags, "link") in ("true", "1")
                    and not _flag(command.flags, "chmod"),
                    context_input=(kind in ("COPY", "ADD") and source is None) or binds_context,
                    root_selector=kind == "RUN",
                    shown_stage="" if len(raw_stages) == 1 else None,
                    args=tuple(command.value),
                    flags=tuple(command.flags),
                    json_form=bool(command.json),
                    heredoc=bool(command.heredocs),
                    workdir=state.workdir,
                    env_ops=state.env_ops,
                    user=state.user,
                    shell=state.shell,
                    root_image=root_image,
                    on_scratch=first_on_scratch and position == 0,
                )
            )
        stages.append(
            PlannedStage(
                index,
                name,
                named,
                base_kind,
                base_ref,
                base_stage,
                from_command.start_line,
                total,
                tuple(planned),
                env,
                workdir,
                tuple(env_ops),
                user,
                shell,
                root_image,
                dir_set,
                empty and not pending,
            )
        )
        names[name] = index

    chosen = (target or stages[-1].name).lower()
    if chosen not in names:
        raise UsageError(f"--target {target!r}: no such stage (stages: {', '.join(s.name for s in stages)})")
    needed: set[str] = set()
    todo = [chosen]
    while todo:
        current = todo.pop()
        if current in needed:
            continue
        needed.add(current)
        stage = stages[names[current]]
        if stage.base_stage:
            todo.append(stage.base_stage)
        todo.extend(step.from_stage for step in stage.steps if step.from_stage)
    return BuildPlan(tuple(s for s in stages if s.name in needed), chosen)
