"""BuildKit's own cache keys for a Dockerfile's steps: a record's digest, recomputed.

A cache record's ``digest`` is ``rootKey(CacheMap digest, output)`` (``solver/cachemanager.go``): sha256 of
``"<D>@<output>"`` where ``D`` is the sha256 of the JSON document the op's ``CacheMap`` builds
(``solver/llbsolver/ops/file.go``, ``exec.go``). That document comes from the op's LLB definition, which the
Dockerfile frontend (``frontend/dockerfile/dockerfile2llb``) builds from the instruction and the build state
(working directory, ENV/ARG, USER, SHELL, the base image's config). Recomputing it names a record with
certainty: a sha256 match is not a coincidence. Content never enters ``D``: what a COPY copies reaches the key
through the record's input link (the content checksum), so one COPY op is one digest for every build context.

Only what this module can encode exactly gets a digest; everything else gets ``unknown`` with the reason.
The rules and the BuildKit versions they hold for are in docs/keys.md.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from inspector.cache.config import CacheRecord
from inspector.cache.naming.dockerfile import BaseConfig, BuildPlan, PlannedStep, expand
from inspector.oci import gojson
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.platform import split_platform

__all__ = [
    "StepKey",
    "exact_records",
    "file_cache_map",
    "go_normalize_path",
    "root_key",
    "step_keys",
]

FILE_CACHE_TYPE = "buildkit.file.v0"  # ops/file.go fileCacheType
EXEC_CACHE_TYPE = "buildkit.exec.v0"  # ops/exec.go execCacheType
DEFAULT_PATH = (
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # util/system DefaultPathEnvUnix
)
_DEFAULT_SHELL = ("/bin/sh", "-c")  # dockerfile2llb/defaultshell.go (not Windows)
_WORKDIR_MODE = 0o755  # dispatchWorkdir: llb.Mkdir(wd, 0755, WithParents(true))


@dataclass(frozen=True, slots=True)
class StepKey:
    """One Dockerfile step's op and the cache record digest BuildKit gives it (when it can be computed)."""

    step: PlannedStep
    op: str  # "file" | "exec" | "source" | "merge"
    cache_map: bytes | None  # the exact CacheMap JSON bytes hashed (None when not computable)
    digest: Digest | None  # root_key(sha256(cache_map), 0): the cache record's digest
    unknown: str | None  # why digest is None
    content_input: bool  # COPY/ADD from the context or another stage: content enters via the input link
    variants: tuple[Digest, ...] = ()  # other encodings tried (older BuildKit versions), see docs/keys.md
    copy_digest: Digest | None = None  # COPY --link: the copy onto scratch that the merge (``digest``) joins


def root_key(cache_map_digest: Digest, output: int = 0) -> Digest:
    """``solver/cachemanager.go`` rootKey: the digest of ``"<op digest>@<output index>"``."""
    return sha256_digest(f"{cache_map_digest}@{output}")


def go_normalize_path(parent: str, path: str, keep_slash: bool) -> str:
    """``client/llb/fileop.go`` normalizePath (and ``util/system`` NormalizePath on Linux).

    Relative paths join ``parent`` (``/`` when empty); a trailing ``/`` or ``/.`` survives ``path.Clean``
    when ``keep_slash`` (a COPY destination that is a directory).
    """
    cleaned = _go_clean(path)
    if not cleaned.startswith("/"):
        cleaned = _go_clean(posixpath.join("/", parent or "/", cleaned))
    if keep_slash:
        if path.endswith("/") and not cleaned.endswith("/"):
            cleaned += "/"
        elif path.endswith("/."):
            if cleaned != "/":
                cleaned += "/"
            cleaned += "."
    return cleaned


def _go_clean(path: str) -> str:
    """Go's ``path.Clean``: like ``posixpath.normpath`` but ``//x`` stays ``/x`` and ``""`` is ``"."``."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def _go_base(path: str) -> str:
    """Go's ``path.Base``."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return "/" if not stripped else stripped.rsplit("/", 1)[-1]


def _omit_empty(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields Go writes for a struct whose fields are all ``omitempty`` (zero values dropped)."""
    return {key: value for key, value in fields.items() if value not in (None, "", 0, False, [], (), {})}


def _owner(chown: str, input_index: int = 0) -> dict[str, Any] | None:
    """``llb.WithUser`` then ``ChownOpt.marshal``: ``user[:group]``, each a number or ``root`` (by id) or a name.

    The proto oneof wrappers (``UserOpt_ByName``, ``UserOpt_ByID``) have no json tags, so their keys are the Go
    field names and ``ByID`` 0 is written; ``NamedUserOpt.input`` is omitempty (the base input, 0).
    """
    if not chown:
        return None

    def one(text: str) -> dict[str, Any]:
        uid = 0 if text == "root" else _parse_int32(text)
        if uid is None:
            return {"User": {"ByName": _omit_empty({"name": text, "input": input_index})}}
        return {"User": {"ByID": uid & 0xFFFFFFFF}}  # uint32(s.UID)

    user, sep, group = chown.partition(":")
    out = {"user": one(user)}
    if sep:
        out["group"] = one(group)
    return out


def _parse_int32(text: str) -> int | None:
    """Go's ``strconv.ParseInt(s, 10, 32)``: an optional sign and decimal digits within int32."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


def file_cache_map(actions: list[dict[str, Any]], indexes: list[list[int]]) -> bytes:
    """The FileOp CacheMap document (``ops/file.go`` CacheMap): each action's JSON as base64, ``indexes`` unless default."""
    encoded = [gojson.encode(action) for action in actions]
    document: dict[str, Any] = {"Type": FILE_CACHE_TYPE, "Actions": encoded}
    if not _default_indexes(indexes):
        document["indexes"] = indexes
    return gojson.encode(document)


def _default_indexes(indexes: list[list[int]]) -> bool:
    """``ops/file.go`` isDefaultIndexes: the common pattern keeps the key of BuildKit before indexes existed."""
    if not indexes:
        return False
    last = len(indexes) - 1
    for i, (first, second, output) in enumerate(indexes):
        if (i == 0 and first != 0) or (i != 0 and first != len(indexes) + (i - 1)):
            return False
        if second not in (-1, 1):
            return False
        if output != (0 if i == last else -1):
            return False
    return True


def _digest_of(cache_map: bytes) -> Digest:
    return root_key(sha256_digest(cache_map), 0)


class _Unknown(Exception):
    """A step whose op cannot be encoded exactly; the message says why."""


@dataclass(frozen=True, slots=True)
class _Context:
    platform: str
    configs: Mapping[str, BaseConfig]

    def config(self, step: PlannedStep) -> BaseConfig | None:
        return self.configs.get(step.root_image) if step.root_image is not None else BaseConfig({})


def step_keys(
    plan: BuildPlan, *, platform: str = "linux/amd64", base_configs: Mapping[str, BaseConfig] | None = None
) -> list[StepKey]:
    """Each planned step's op digest, in plan order (stages, then steps).

    ``base_configs`` (by ``FROM`` reference) give base images' ``Env``/``User``/``Shell``/``WorkingDir``;
    a RUN whose base config is missing has no digest (its env is unknown).
    """
    context = _Context(platform, base_configs or {})
    out: list[StepKey] = []
    for stage in plan.stages:
        for step in stage.steps:
            out.append(_step_key(step, context))
    return out


def _step_key(step: PlannedStep, context: _Context) -> StepKey:
    content = step.context_input or step.from_stage is not None or step.from_image is not None
    op = "exec" if step.kind == "RUN" else ("merge" if step.link else "file")
    content = content and step.kind in ("COPY", "ADD")
    if step.link and step.on_scratch:  # llb.Merge drops scratch inputs: the copy onto scratch alone
        op = "file"
    elif step.link and step.kind in ("COPY", "ADD"):
        try:
            copy_map = _copy(step, context)
        except _Unknown as exc:
            return StepKey(step, op, None, None, str(exc), content)
        return StepKey(
            step, op, MERGE_CACHE_MAP, _digest_of(MERGE_CACHE_MAP), None, content, (), _digest_of(copy_map)
        )
    try:
        if step.kind == "WORKDIR":
            cache_map = _workdir(step, context)
        elif step.kind in ("COPY", "ADD"):
            cache_map = _copy(step, context)
        else:
            cache_map = _run(step, context)
    except _Unknown as exc:
        return StepKey(step, op, None, None, str(exc), content)
    digest = _digest_of(cache_map)
    variants: tuple[Digest, ...] = ()
    if step.kind == "RUN":  # older BuildKit encodings (docs/keys.md)
        older = (_digest_of(_run(step, context, encoding)) for encoding in _OLDER)
        variants = tuple(d for d in dict.fromkeys(older) if d != digest)
    elif b',"indexes":' in cache_map:  # before v0.9 (8d707775) a file CacheMap had no indexes, its last key
        variants = (_digest_of(cache_map.rsplit(b',"indexes":', 1)[0] + b"}"),)
    return StepKey(step, op, cache_map, digest, None, content, variants)


def _user(step: PlannedStep, config: BaseConfig | None) -> str:
    """The image config's User at this step: the last USER, else the base image's."""
    if step.user:
        return step.user
    return config.user if config is not None else ""


def _workdir(step: PlannedStep, context: _Context) -> bytes:
    """WORKDIR: a FileOp with one mkdir action (``dispatchWorkdir``); the owner is the image's USER."""
    config = context.config(step)
    user = _user(step, config)
    if step.on_scratch and user and any(_parse_int32(p) is None and p != "root" for p in user.split(":", 1)):
        raise _Unknown("WORKDIR with a USER name on scratch: BuildKit has no /etc/passwd to read")
    mkdir = _omit_empty(
        {
            "path": go_normalize_path("/", step.workdir, False),
            "mode": _WORKDIR_MODE,
            "makeParents": True,
            "owner": _owner(user),
            "timestamp": -1,  # marshalTime(nil): no SOURCE_DATE_EPOCH
        }
    )
    return file_cache_map([mkdir], [[-1 if step.on_scratch else 0, -1, 0]])


def _flags(step: PlannedStep) -> dict[str, list[str]]:
    """``--name=value`` flags by name (a bare ``--name`` is ``"true"``), each value in order."""
    out: dict[str, list[str]] = {}
    for flag in step.flags:
        name, eq, value = flag[2:].partition("=")
        out.setdefault(name, []).append(value if eq else "true")
    return out


def _step_env(step: PlannedStep, config: BaseConfig | None) -> dict[str, str]:
    """The env words of COPY/ADD/WORKDIR expand with (the base config's part only when it is known)."""
    env = _env(step, config if config is not None else BaseConfig({}))
    return dict(item.partition("=")[::2] for item in env)


_WILDCARDS = frozenset("*?[")


def _copy(step: PlannedStep, context: _Context) -> bytes:
    """COPY/ADD: a FileOp with one copy action per source (``convert_copy.go`` dispatchCopy, ``fileop.go``).

    The key holds only the source's base name (``ops/file.go`` cuts ``Src`` to ``path.Base``): the content
    and the full path enter the record through its input link and selector.
    """
    flags = _flags(step)
    if step.heredoc:
        raise _Unknown("COPY/ADD of a here-document is not encoded")
    if "checksum" in flags or "keep-git-dir" in flags:
        raise _Unknown("ADD --checksum/--keep-git-dir is not encoded")
    config = context.config(step)
    env = _step_env(step, config)
    words = [expand(word, env, keep_unset=False) for word in step.args]
    if len(words) < 2:
        raise _Unknown(f"{step.kind} needs a source and a destination")
    sources, destination = words[:-1], words[-1]
    workdir = _current_dir(step, config)
    if destination.startswith("/"):
        dest = go_normalize_path("/", destination, True)
    else:  # pathRelativeToWorkingDir: "" and "." mean the working directory itself
        dest = go_normalize_path(workdir, "./" if destination in ("", ".") else destination, True)
    dest = go_normalize_path(workdir, dest, True)
    chmod = expand(flags.get("chmod", [""])[-1], env, keep_unset=False)
    mode: int | None = -1
    mode_str = ""
    if chmod:
        try:
            parsed = int(chmod, 8) if chmod.isascii() and chmod.isdigit() else None
        except ValueError:  # digits, not octal: BuildKit fails the build ("invalid chmod parameter")
            raise _Unknown(f"invalid --chmod {chmod!r}") from None
        if parsed is None:
            mode, mode_str = None, chmod  # symbolic (u+x): ModeStr
        else:
            if not 0 <= parsed <= 0o7777:
                raise _Unknown(f"invalid --chmod {chmod!r}")
            mode = parsed
    onto_scratch = step.link or step.on_scratch  # the copy's base is an empty state: no base input
    chown = expand(flags.get("chown", [""])[-1], env, keep_unset=False)
    if onto_scratch and chown and any(_parse_int32(p) is None and p != "root" for p in chown.split(":", 1)):
        raise _Unknown("COPY --chown by name onto scratch (or --link): BuildKit has no /etc/passwd to read")
    owner = _owner(chown, 0)
    excludes = [expand(value, env, keep_unset=False) for value in flags.get("exclude", [])]
    parents = flags.get("parents", ["false"])[-1] in ("true", "1")
    unpack_flag = flags.get("unpack")
    actions: list[dict[str, Any]] = []
    for source in sources:
        if _is_git(source):
            raise _Unknown("ADD of a git repository is not encoded")
        if source.startswith(("http://", "https://")):
            if step.kind != "ADD":
                raise _Unknown("COPY of a URL is an error in BuildKit")
            name = _go_base(
                source.split("?", 1)[0].split("#", 1)[0].partition("://")[2].partition("/")[2] or "/"
            )
            name = name if name not in (".", "/") else "__unnamed__"
            unpack = unpack_flag is not None and unpack_flag[-1] in ("true", "1")
            action: dict[str, Any] = {
                "src": name,
                "dest": dest,
                "owner": owner,
                "mode": mode,
                "attemptUnpackDockerCompatibility": unpack,
                "createDestPath": True,
                "timestamp": -1,
                "exclude_patterns": excludes,
                "modeStr": mode_str,
            }
        else:
            patterns: list[str] = []
            required: list[str] = []
            if parents:
                parent, pivot, pattern = source.partition("/./")
                source, pattern = (parent, pattern) if pivot else ("/", source)
                pattern = go_normalize_path("/", pattern, False)
                patterns = [pattern.removeprefix("/")]
                if not _WILDCARDS & set(source) and not _WILDCARDS & set(pattern):
                    required = [go_normalize_path("/", posixpath.join(source, pattern), False)]
            source = go_normalize_path("/", source, False)
            unpack = step.kind == "ADD" if unpack_flag is None else unpack_flag[-1] in ("true", "1")
            action = {
                "src": _go_base(source),
                "dest": dest,
                "owner": owner,
                "mode": mode,
                "followSymlink": True,
                "dirCopyContents": True,
                "attemptUnpackDockerCompatibility": unpack,
                "createDestPath": True,
                "allowWildcard": True,
                "allowEmptyWildcard": True,
                "timestamp": -1,
                "include_patterns": patterns,
                "exclude_patterns": excludes,
                "modeStr": mode_str,
                "required_paths": required,
            }
        actions.append(_omit_empty(action))
    # Inputs: the destination state (none on scratch for --link), then the source; action i > 0 takes the
    # previous action's output, numbered after the inputs (fileop.go Marshal, getIndex).
    base, inputs = (-1, 1) if onto_scratch else (0, 2)
    secondary = inputs - 1
    last = len(actions) - 1
    indexes = [
        [base if i == 0 else inputs + i - 1, secondary, 0 if i == last else -1] for i in range(len(actions))
    ]
    return file_cache_map(actions, indexes)


def _is_git(source: str) -> bool:
    """Sources dfgitutil.ParseGitRef takes for git (the common spellings; anything else is a file or URL)."""
    return source.startswith(("git@", "git://", "ssh://")) or ".git#" in source or source.endswith(".git")


MERGE_CACHE_MAP = b'{"Type":"buildkit.merge.v0","Merge":{"inputs":[{},{"input":1}]}}'
"""``COPY --link``'s MergeOp of (the stage so far, the copy on scratch): ``ops/merge.go`` CacheMap; ``input`` 0
is omitempty. The same for every such step: what it merges enters through the record's inputs."""


def _current_dir(step: PlannedStep, config: BaseConfig | None) -> str:
    """LLB's Dir at the step: the last WORKDIR, else the base config's WorkingDir, else ``/`` (``llb.NewState``)."""
    if step.workdir:
        return step.workdir
    if config is not None and config.workdir:
        return go_normalize_path("/", config.workdir, False)
    return "/"


_NETWORK = {"default": 0, "sandbox": 0, "host": 1, "none": 2}  # pb.NetMode
_SECURITY = {"sandbox": 0, "insecure": 1}  # pb.SecurityMode


@dataclass(frozen=True, slots=True)
class _ExecEncoding:
    """How one BuildKit era writes an ExecOp's CacheMap (docs/keys.md, "What changed when")."""

    mount_stubs: bool = True  # meta.removeMountStubsRecursive: set since v0.11.0 (6b265b1b)
    clear_cache_ids: bool = True  # checkShouldClearCacheOpts: since v0.13.0 (584ec400)
    mounts: bool = True  # mounts in the key: since v0.9.0 (61bb15a4); before, none at all


_CURRENT = _ExecEncoding()
_OLDER = (
    _ExecEncoding(clear_cache_ids=False),  # v0.11, v0.12
    _ExecEncoding(mount_stubs=False, clear_cache_ids=False),  # v0.9, v0.10
    _ExecEncoding(mount_stubs=False, clear_cache_ids=False, mounts=False),  # before v0.9
)


def _run(step: PlannedStep, context: _Context, encoding: _ExecEncoding = _CURRENT) -> bytes:
    """RUN: the ExecOp CacheMap (``ops/exec.go``): meta, mounts, network, security, then the platform.

    A plain RUN has one mount, the root filesystem; CacheMap drops it (kept compatible with versions that
    left mounts out), so ``Exec`` is ``{"meta": …}``.
    """
    config = context.config(step)
    if config is None:
        raise _Unknown(f"base image config not available ({step.root_image}): RUN env unknown")
    if step.heredoc:
        raise _Unknown("RUN with a here-document is not encoded")
    if not step.args:
        raise _Unknown("RUN without a command")
    flags = _flags(step)
    if set(flags) - {"network", "security", "mount"}:
        raise _Unknown(f"RUN {' '.join(sorted(set(flags)))}: not encoded")
    network = _NETWORK.get(flags.get("network", ["default"])[-1])
    security = _SECURITY.get(flags.get("security", ["sandbox"])[-1])
    if network is None or security is None:
        raise _Unknown("RUN --network/--security value not known")
    if step.json_form:
        args = list(step.args)
    else:
        shell = step.shell or config.shell or _DEFAULT_SHELL
        args = [*shell, " ".join(step.args)]
    meta = _omit_empty(
        {
            "args": args,
            "env": _env(step, config),
            "cwd": _current_dir(step, config),
            "user": _user(step, config),
            "removeMountStubsRecursive": encoding.mount_stubs,
        }
    )
    if step.on_scratch and "mount" in flags:
        raise _Unknown("RUN --mount on scratch is not encoded")
    env = _step_env(step, config)
    mounts = _mounts(flags.get("mount", []), env, _current_dir(step, config), encoding)
    execution = _omit_empty({"meta": meta, "mounts": mounts, "network": network, "security": security})
    os_name, arch, variant = split_platform(context.platform)
    document: dict[str, Any] = {"Type": EXEC_CACHE_TYPE, "Exec": execution, "OS": os_name, "Arch": arch}
    if variant:
        document["Variant"] = variant
    return gojson.encode(document)


_CACHE_SHARING = {"": 0, "shared": 0, "private": 1, "locked": 2}  # pb.CacheSharingOpt
_MOUNT_TYPES = {"bind": 0, "secret": 1, "ssh": 2, "cache": 3, "tmpfs": 4}  # pb.MountType


def _mounts(specs: list[str], env: Mapping[str, str], workdir: str, encoding: _ExecEncoding) -> list[Any]:
    """The ExecOp's mounts as its CacheMap writes them (``convert_runmount.go``, ``client/llb/exec.go``).

    The rootfs mount plus each ``--mount``, sorted by target; secrets after them. In the CacheMap every
    selector is cleared and a cache mount's ID and sharing too, unless it is the Dockerfile default
    (``checkShouldClearCacheOpts``). A lone rootfs mount is left out (ops/exec.go). Types and options that
    add inputs this module does not follow (``from=``, bind sources other than the context, cache
    ``uid``/``gid``/``mode``, ssh, secrets as env) are unknown.
    """
    if not specs or not encoding.mounts:
        return []
    sorted_mounts: list[tuple[str, dict[str, Any]]] = [("/", {"dest": "/"})]  # input 0, output 0
    secrets: list[dict[str, Any]] = []
    context_input: int | None = None
    for spec in specs:
        fields: dict[str, str] = {}
        for field in spec.split(","):
            key, eq, value = field.partition("=")
            fields[key.strip().lower()] = expand(value, env, keep_unset=False) if eq else "true"
        kind = fields.get("type", "bind").lower()
        if kind not in _MOUNT_TYPES or kind == "ssh":
            raise _Unknown(f"RUN --mount=type={kind} is not encoded")
        if (
            "from" in fields
            or "env" in fields
            or (fields.keys() & {"uid", "gid", "mode"} and kind != "secret")
        ):
            raise _Unknown("RUN --mount with from=, uid/gid/mode or env= is not encoded")
        target = fields.get("target") or fields.get("dst") or fields.get("destination") or ""
        if kind == "secret":
            secret_id = fields.get("source") or fields.get("src") or fields.get("id") or _go_base(target)
            required = fields.get("required", "false").lower() in ("true", "1")
            try:
                uid, gid = int(fields.get("uid", "0")), int(fields.get("gid", "0"))
                mode = int(fields["mode"], 8) if "mode" in fields else 0o400
            except ValueError:
                raise _Unknown("RUN --mount=type=secret: uid/gid/mode not numbers") from None
            option = _omit_empty(
                {"ID": secret_id, "uid": uid, "gid": gid, "mode": mode, "optional": not required}
            )
            dest = target or "/run/secrets/" + _go_base(secret_id)
            secrets.append({"input": -1, "dest": dest, "mountType": 1, "secretOpt": option})
            continue
        if not target:
            raise _Unknown("RUN --mount without a target")
        if not posixpath.isabs(_go_clean(target)):
            target = _go_clean(posixpath.join("/", workdir or "/", target))
        readonly = _readonly(fields, kind)
        mount: dict[str, Any]
        if kind == "cache":
            cache_id = fields.get("id") or _go_clean(fields.get("target") or "")
            cache_id = "/" + cache_id  # opt.cacheIDNamespace (empty) + "/" + id
            sharing = _CACHE_SHARING.get(fields.get("sharing", "").lower())
            if sharing is None:
                raise _Unknown(f"RUN --mount sharing={fields.get('sharing')!r} not known")
            option = _cache_option(cache_id, sharing, target, encoding)
            mount = {"input": -1, "dest": target, "output": -1, "readonly": readonly, "mountType": 3}
            mount["cacheOpt"] = option
        elif kind == "tmpfs":
            size = fields.get("size", "0")
            if not (size.isascii() and size.isdigit()):
                raise _Unknown(f"RUN --mount=type=tmpfs,size={size} is not encoded")
            mount = {"input": -1, "dest": target, "output": -1, "readonly": readonly, "mountType": 4}
            mount["TmpfsOpt"] = _omit_empty({"size": int(size)})
        else:  # bind from the build context: a read-only (or no-output) view of it, selector cleared
            if context_input is None:
                context_input = 1
            mount = {"input": context_input, "dest": target, "output": -1, "readonly": readonly}
        sorted_mounts.append(
            (target, {key: value for key, value in mount.items() if value not in (0, False)})
        )
    sorted_mounts.sort(key=lambda item: item[0].encode())
    return [mount for _, mount in sorted_mounts] + secrets


def _readonly(fields: Mapping[str, str], kind: str) -> bool:
    """``ro``/``rw`` as instructions/commands_runmount.go reads them; binds default read-only."""
    for key in ("readonly", "ro"):
        if key in fields:
            return fields[key].lower() in ("true", "1")
    for key in ("readwrite", "rw"):
        if key in fields:
            return fields[key].lower() not in ("true", "1")
    return kind not in ("cache", "tmpfs")


def _cache_option(cache_id: str, sharing: int, dest: str, encoding: _ExecEncoding) -> dict[str, Any]:
    """A cache mount's ``cacheOpt`` in the key: cleared (``{}``) unless it is the Dockerfile default."""
    default = sharing == 0 and (cache_id == dest or cache_id.partition("/")[2] == dest)
    if encoding.clear_cache_ids and not default:
        return {}
    return _omit_empty({"ID": cache_id, "sharing": sharing})


def _env(step: PlannedStep, config: BaseConfig) -> list[str]:
    """The RUN env as LLB's EnvList gives it: the base config's Env (with PATH defaulted), then ENV/ARG in order.

    ``EnvList.AddOrReplace`` appends; ``ToArray`` keeps each key at its newest position, so a replaced key moves
    to the end (``client/llb/meta.go``).
    """
    env: dict[str, str] = dict(config.env)
    if "PATH" not in env:  # dispatch: "make sure that PATH is always set"
        env["PATH"] = DEFAULT_PATH
    for key, raw in step.env_ops:
        value = expand(raw, env, keep_unset=False)
        env.pop(key, None)
        env[key] = value
    return [f"{key}={value}" for key, value in env.items()]


def exact_records(
    records: Sequence[CacheRecord],
    plan: BuildPlan,
    keys: Sequence[StepKey],
    base_roots: Mapping[str, Set[int]] | None = None,
) -> dict[int, tuple[PlannedStep, ...]]:
    """The records each planned step's key identifies exactly: record index -> its steps.

    A record is the step's when its digest is the step's key and its first input links to the record of the
    step before (for a stage's first step: a root record, the base image; ``FROM stage``: that stage's last
    step). The digest says "this op"; the parent link says "in this chain", so an op shared by unrelated
    builds (``WORKDIR /app``) is pinned only where its chain matches. After a step whose key is unknown (a RUN
    without its base config) the chain is unknown too, and the digest alone decides; after a step whose key
    is not in the cache, nothing below is pinned. Several steps share a record when they are the same op on
    the same base (BuildKit builds it once: ``WORKDIR /app`` first in two stages ``FROM node:18-alpine``); a
    record claimed by steps on different bases (which root is which base, the cache does not say) is left to
    the alignment — unless ``base_roots`` (``FROM`` reference -> its root records, from bases named exactly)
    says which roots are a stage's base.
    """
    key_of = {(key.step.stage, key.step.number): key for key in keys}
    by_digest: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_digest.setdefault(record.digest, []).append(index)
    claims: dict[int, list[PlannedStep]] = {}
    stage_ends: dict[str, _Parents] = {}  # each stage's last step's records
    for stage in plan.stages:
        parents: _Parents
        if stage.base_kind == "stage" and stage.base_stage is not None:
            parents = stage_ends.get(stage.base_stage, _BROKEN)
        elif base_roots and stage.base_ref is not None and stage.base_ref in base_roots:
            parents = frozenset(base_roots[stage.base_ref])
        else:
            parents = _ROOT
        for step in stage.steps:
            key = key_of.get((step.stage, step.number))
            if key is None or key.digest is None:
                parents = _ANY if parents is not _BROKEN else _BROKEN
                continue
            found = {
                index
                for digest in (key.digest, *key.variants)
                for index in by_digest.get(digest, ())
                if _links_parent(records, index, parents)
            }
            for index in found:
                claims.setdefault(index, []).append(step)
            parents = frozenset(found) if found else _BROKEN
        stage_ends[stage.name] = parents
    return {
        index: tuple(steps)
        for index, steps in claims.items()
        if len({(step.text, step.root_image) for step in steps}) == 1
    }


_ROOT = frozenset({-1})  # the stage's base: a root record (FROM image) or none (FROM scratch)
_ANY = frozenset({-2})  # the step before had no key: any parent
_BROKEN = frozenset({-3})  # the step before is not in the cache: nothing below is pinned
_Parents = frozenset[int]


def _links_parent(records: Sequence[CacheRecord], index: int, parents: _Parents) -> bool:
    slot = records[index].inputs[0] if records[index].inputs else ()
    if parents is _BROKEN:
        return False
    if parents is _ANY:
        return True
    if parents is _ROOT:  # FROM image: input 0 is the base's root record; FROM scratch: the copy's source
        return not slot or any(records[link.link].is_root for link in slot)
    return any(link.link in parents for link in slot)
