"""BuildKit cache keys recomputed from a Dockerfile, checked against records of real caches.

Every expected digest here is a record digest read from a real BuildKit export in ``../shared/realworld/``
(SOURCES.md says where each came from) or a value derived by hand from BuildKit's source; the CacheMap JSON
each step must hash to is written out beside it, field by field, with the source lines that produce it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from inspector.cache.naming.dockerfile import BaseConfig, plan_dockerfile
from inspector.cache.naming.keys import (
    StepKey,
    file_cache_map,
    go_normalize_path,
    root_key,
    step_keys,
)
from inspector.oci import gojson
from inspector.oci.digest import Digest
from inspector.oci.platform import split_platform
from tests.harness.paths import schema
from tests.harness.support import run_cli, validate_json

# committed-caches/fullcycle-node: Daniel-Souzax/full-cycle-4.0-docker-na-pratica @ e4384a8d,
# mynode_app/Dockerfile (instructions as in that file; comments and HEALTHCHECK/VOLUME/EXPOSE/CMD dropped,
# they make no op).
FULLCYCLE_NODE = """\
ARG NODE_VERSION=21.1.0
FROM node:${NODE_VERSION}-slim
RUN apt-get update && apt-get install -y vim && rm -rf /var/lib/apt/lists/*
ENV PORT=3001
ENV MESSAGE="Hello Docker!"
WORKDIR /app
COPY package*.json ./
RUN npm install
COPY . .
CMD ["node", "index.js"]
"""
# node:21.1.0-slim's image config Env (docker-library/official-images node 21.1.0; given in issue 18).
NODE_21_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "NODE_VERSION": "21.1.0",
    "YARN_VERSION": "1.22.19",
}
FULLCYCLE_CONFIG = "committed-caches/fullcycle-node/blobs/sha256/" + (
    "154a166eb9cfd7d503f750bc3d84b6aece4a606957b2b9b89f4d30a399826e67"
)


def record_digests(path: Path) -> list[str]:
    """Every record digest of a cache config, as written (duplicates kept)."""
    return [record["digest"] for record in json.loads(path.read_bytes())["records"]]


def sha256(data: bytes | str) -> str:
    return "sha256:" + hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def by_text(keys: list[StepKey]) -> dict[str, StepKey]:
    return {key.step.text: key for key in keys}


# -- Go's encoding/json, from its documentation (encoding/json Marshal)


def test_go_json_escapes_html_characters_and_line_separators() -> None:
    # "String values encode as JSON strings coerced to valid UTF-8 … So that the JSON will be safe to embed
    # inside HTML <script> tags, the string is encoded using HTMLEscape, which replaces "<", ">", "&", U+2028,
    # and U+2029 are escaped to "\u003c","\u003e", "\u0026", "\u2028", and "\u2029"."
    assert gojson.encode(["a<b>&c", "\u2028\u2029"]) == b'["a\\u003cb\\u003e\\u0026c","\\u2028\\u2029"]'


def test_go_json_keeps_non_ascii_as_utf8_and_is_compact() -> None:
    # Marshal writes no insignificant space and leaves non-ASCII runes as UTF-8 bytes.
    assert gojson.encode({"k": "é", "n": [1, -1], "b": True}) == '{"k":"é","n":[1,-1],"b":true}'.encode()


def test_go_json_writes_byte_slices_as_padded_base64() -> None:
    # "Array and slice values encode as JSON arrays, except that []byte encodes as a base64-encoded string".
    # Go uses base64.StdEncoding: "ab" is "YWI=" (padded).
    assert gojson.encode({"Actions": [b"ab"]}) == b'{"Actions":["YWI="]}'


def test_go_json_control_characters() -> None:
    # Go >= 1.22 writes \b and \f short; other control characters below 0x20 as \u00XX; DEL stays raw.
    assert gojson.encode("\b\f\n\r\t\x01\x7f") == b'"\\b\\f\\n\\r\\t\\u0001\x7f"'


# -- paths as fileop.go normalizePath writes them


@pytest.mark.parametrize(
    ("parent", "path", "keep", "expected"),
    [
        # COPY . . under WORKDIR /app (pathRelativeToWorkingDir makes "." "./")
        ("/app", "./", True, "/app/"),
        ("/app", "dist", True, "/app/dist"),
        ("/", "/usr/src/app/", True, "/usr/src/app/"),
        ("/app", "x/.", True, "/app/x/."),  # the "/." suffix is kept
        ("", "a/../b", False, "/b"),
    ],
)
def test_normalize_path(parent: str, path: str, keep: bool, expected: str) -> None:
    assert go_normalize_path(parent, path, keep) == expected


# -- the worked examples of issue 18


def test_root_key_is_the_digest_of_op_digest_at_output() -> None:
    # solver/cachemanager.go rootKey: digest.FromBytes([]byte(fmt.Sprintf("%s@%d", dgst, output))).
    op = Digest(sha256("x"))
    assert root_key(op) == sha256(f"{op}@0")
    assert root_key(op, 1) == sha256(f"{op}@1")


def test_workdir_app_is_the_record_of_exports_08_09_11(realworld: Path) -> None:
    # WORKDIR /app → llb.Mkdir("/app", 0755, WithParents(true)) on the stage (dispatchWorkdir); no USER, no
    # SOURCE_DATE_EPOCH. FileActionMkDir fields in order path, mode, makeParents, owner, timestamp, all
    # omitempty: {"path":"/app","mode":493,"makeParents":true,"timestamp":-1} (owner nil, timestamp -1 from
    # marshalTime(nil)). One action with indexes [[0,-1,0]] is the default pattern, so no "indexes" key.
    action = b'{"path":"/app","mode":493,"makeParents":true,"timestamp":-1}'
    expected_map = b'{"Type":"buildkit.file.v0","Actions":["' + base64.b64encode(action) + b'"]}'
    expected = sha256(sha256(expected_map) + "@0")
    assert expected == "sha256:807b3e8722c68572736f54d83fd741a5b1d69ccbef218fae52b4149a56d232ce"
    key = step_keys(plan_dockerfile("FROM alpine\nWORKDIR /app\n"))[0]
    assert (key.op, key.cache_map, key.digest, key.unknown) == ("file", expected_map, expected, None)
    for name in (
        "08-local-2025-cacheconfig.json",
        "09-local-2025-cacheconfig-dup-digests.json",
        "11-local-2026-cacheconfig.json",
        "14-buildkit-pr4429-s3-config-with-annotations.json",  # a forked BuildKit of 2023 (v0.12/0.13)
    ):
        assert expected in record_digests(realworld / name), name


def test_copy_dot_is_the_record_of_exports_08_09_11(realworld: Path) -> None:
    # COPY . . under WORKDIR /app: dispatchCopy's CopyInfo (FollowSymlinks, CopyDirContentsOnly,
    # CreateDestPath, AllowWildcard, AllowEmptyWildcard; no chmod → Mode -1); src "." normalised against "/"
    # is "/", and ops/file.go cuts it to path.Base("/") = "/"; dest "." becomes "./" → "/app/".
    # FileActionCopy field order: src, dest, owner, mode, followSymlink, dirCopyContents,
    # attemptUnpackDockerCompatibility (false for COPY: omitted), createDestPath, allowWildcard,
    # allowEmptyWildcard, timestamp.
    action = (
        b'{"src":"/","dest":"/app/","mode":-1,"followSymlink":true,"dirCopyContents":true,'
        b'"createDestPath":true,"allowWildcard":true,"allowEmptyWildcard":true,"timestamp":-1}'
    )
    expected_map = b'{"Type":"buildkit.file.v0","Actions":["' + base64.b64encode(action) + b'"]}'
    expected = sha256(sha256(expected_map) + "@0")
    assert expected == "sha256:0b7ec3a160616f50903923a3793cb906a4f6111d1a919121fba0a2210be5b00c"
    key = by_text(step_keys(plan_dockerfile("FROM alpine\nWORKDIR /app\nCOPY . .\n")))["COPY . ."]
    assert (key.cache_map, key.digest, key.content_input) == (expected_map, expected, True)
    for name in ("08-local-2025-cacheconfig.json", "09-local-2025-cacheconfig-dup-digests.json"):
        assert expected in record_digests(realworld / name), name
    assert expected in record_digests(realworld / "11-local-2026-cacheconfig.json")


def test_fullcycle_node_every_step_is_a_record(realworld: Path) -> None:
    # The whole Dockerfile of committed-caches/fullcycle-node (mode=max, 9 records: 4 roots for the base
    # image, then the five steps). With node:21.1.0-slim's Env each step's key is one of its records.
    digests = record_digests(realworld / FULLCYCLE_CONFIG)
    plan = plan_dockerfile(FULLCYCLE_NODE)
    keys = by_text(step_keys(plan, base_configs={"node:21.1.0-slim": BaseConfig(NODE_21_ENV)}))
    path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    def exec_map(args: str, env: str, cwd: str) -> bytes:
        # ops/exec.go CacheMap: {Type, Exec, OS, Arch} with Exec = pb.ExecOp whose only mount (the rootfs,
        # dest "/", bind, writable) is dropped; Meta in field order args, env, cwd, user (empty: omitted),
        # removeMountStubsRecursive (client/llb/exec.go sets it true). Go escapes & as \\u0026.
        return (
            '{"Type":"buildkit.exec.v0","Exec":{"meta":{"args":["/bin/sh","-c",'
            + args
            + '],"env":['
            + env
            + '],"cwd":"'
            + cwd
            + '","removeMountStubsRecursive":true}},"OS":"linux","Arch":"amd64"}'
        ).encode()

    base_env = f'"{path}","NODE_VERSION=21.1.0","YARN_VERSION=1.22.19"'
    # The first RUN runs before ENV and WORKDIR: env = the image's, cwd "/" (llb.NewState sets Dir("/")).
    apt = exec_map(
        '"apt-get update \\u0026\\u0026 apt-get install -y vim \\u0026\\u0026 rm -rf /var/lib/apt/lists/*"',
        base_env,
        "/",
    )
    # RUN npm install: ENV PORT and MESSAGE appended after the image's Env (EnvList order), cwd /app.
    npm = exec_map('"npm install"', base_env + ',"PORT=3001","MESSAGE=Hello Docker!"', "/app")
    # COPY package*.json ./: src keeps its base name with the wildcard, dest "/app/".
    package = (
        b'{"src":"package*.json","dest":"/app/","mode":-1,"followSymlink":true,"dirCopyContents":true,'
        b'"createDestPath":true,"allowWildcard":true,"allowEmptyWildcard":true,"timestamp":-1}'
    )
    package_map = b'{"Type":"buildkit.file.v0","Actions":["' + base64.b64encode(package) + b'"]}'
    expected = {
        "RUN apt-get update && apt-get install -y vim && rm -rf /var/lib/apt/lists/*": apt,
        "RUN npm install": npm,
        "COPY package*.json ./": package_map,
    }
    for text, cache_map in expected.items():
        assert keys[text].cache_map == cache_map, text
        assert keys[text].digest == sha256(sha256(cache_map) + "@0")
        assert keys[text].digest in digests, text
    assert keys["RUN npm install"].digest == (
        "sha256:3fbcdd4ed349c9563c8b73bb1b879ffa847a75f768b91d23ee6cb23e268169f8"  # issue 18's worked example
    )
    apt_key = keys["RUN apt-get update && apt-get install -y vim && rm -rf /var/lib/apt/lists/*"]
    assert str(apt_key.digest).startswith("sha256:44fb4bbb39eb")  # the second RUN
    assert all(key.digest in digests for key in keys.values())


def test_run_without_the_base_config_is_unknown() -> None:
    key = step_keys(plan_dockerfile("FROM node:21\nRUN npm ci\n"))[0]
    assert key.digest is None and key.cache_map is None
    assert key.unknown == "base image config not available (node:21): RUN env unknown"


def test_file_cache_map_writes_indexes_when_not_the_default() -> None:
    # ops/file.go: Indexes is `json:"indexes,omitempty"`, nil when isDefaultIndexes; a copy onto scratch
    # (COPY --link) has input -1, so [[-1,0,0]] is written.
    assert file_cache_map([{"a": 1}], [[-1, 0, 0]]) == (
        b'{"Type":"buildkit.file.v0","Actions":["eyJhIjoxfQ=="],"indexes":[[-1,0,0]]}'
    )
    assert (
        file_cache_map([{"a": 1}], [[0, 1, 0]]) == b'{"Type":"buildkit.file.v0","Actions":["eyJhIjoxfQ=="]}'
    )


def test_show_labels_recomputed_steps_exact_through_the_cli(tmp_path: Path, realworld: Path) -> None:
    # fullcycle-node without --resolve-bases: the base config is unknown, so both RUNs have no key and stay
    # matched by alignment; WORKDIR /app (807b3e87…), COPY package*.json ./ (bd5d9c5d…) and COPY . .
    # (0b7ec3a1…) are records of this cache (test above), so they are exact.
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(FULLCYCLE_NODE)
    layout = f"oci:{realworld / 'committed-caches' / 'fullcycle-node'}"
    result = run_cli("show", layout, "--no-check-blobs", "--dockerfile", str(dockerfile), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validate_json(document, schema("show"))
    steps = [(step["instruction"], step["basis"]) for step in document["stages"][0]["steps"]]
    assert steps == [
        ("[2/6] RUN apt-get update && apt-get install -y vim && rm -rf /var/lib/apt/lists/*", "matched"),
        ("[3/6] WORKDIR /app", "exact"),
        ("[4/6] COPY package*.json ./", "exact"),
        ("[5/6] RUN npm install", "matched"),
        ("[6/6] COPY . .", "exact"),
    ]


def test_a_step_whose_parent_is_not_its_chain_is_not_pinned(realworld: Path) -> None:
    # Export 08 holds COPY . . (0b7ec3a1…) twice, but this Dockerfile's COPY . . comes right after a
    # COPY package*.json that 08 does not hold (08 is a Python backend): the chain is broken there, so no
    # record of 08 may be pinned to COPY . . although its digest is in the cache.
    from inspector.cache.config import parse_cache_config
    from inspector.cache.naming.keys import exact_records

    config = parse_cache_config((realworld / "08-local-2025-cacheconfig.json").read_bytes())
    plan = plan_dockerfile("FROM python:3.11-slim\nWORKDIR /app\nCOPY package*.json ./\nCOPY . .\n")
    pinned = exact_records(config.records, plan, step_keys(plan))
    assert sorted(step.text for group in pinned.values() for step in group) == ["WORKDIR /app"]


def test_run_before_buildkit_0_11_is_a_variant_without_mount_stubs(realworld: Path) -> None:
    # committed-caches/drone-buildkit was written by BuildKit v0.8.1 (SOURCES.md). client/llb/exec.go sets
    # Meta.RemoveMountStubsRecursive only since v0.11.0 (6b265b1b), so its RUN keys lack the field:
    # `RUN apk add --no-cache build-base` on alpine (env: the one PATH entry, cwd "/") hashes
    # {"Type":"buildkit.exec.v0","Exec":{"meta":{"args":[…],"env":[PATH],"cwd":"/"}},"OS":"linux","Arch":"amd64"}.
    old = (
        b'{"Type":"buildkit.exec.v0","Exec":{"meta":{"args":["/bin/sh","-c","apk add --no-cache build-base"],'
        b'"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"cwd":"/"}},'
        b'"OS":"linux","Arch":"amd64"}'
    )
    expected = sha256(sha256(old) + "@0")
    config = realworld / "committed-caches/drone-buildkit/blobs/sha256"
    cache_configs = [path for path in config.iterdir() if b'"records"' in path.read_bytes()]
    assert len(cache_configs) == 1
    assert expected in record_digests(cache_configs[0])
    key = step_keys(
        plan_dockerfile("FROM alpine\nRUN apk add --no-cache build-base\n"),
        base_configs={"alpine": BaseConfig({})},
    )[0]
    assert key.variants == (expected,)
    assert key.cache_map == old.replace(b'"cwd":"/"}', b'"cwd":"/","removeMountStubsRecursive":true}')


def action_of(key: StepKey, index: int = 0) -> bytes:
    """The index-th action's JSON inside a FileOp CacheMap (base64 in the document)."""
    assert key.cache_map is not None, key.unknown
    return base64.b64decode(json.loads(key.cache_map)["Actions"][index])


def test_copy_owner_and_mode_as_go_marshals_the_proto() -> None:
    # --chown=1000:abc → llb.WithUser: "1000" parses as a uid (ByID), "abc" does not (ByName, input = the base
    # input 0, omitted). The oneof wrapper structs carry no json tag: keys "User", "ByID", "ByName".
    # --chmod=755 is octal → Mode 493 (and no -1). Fields in FileActionCopy order: src, dest, owner, mode, ….
    plan = plan_dockerfile("FROM alpine\nCOPY --chown=1000:abc --chmod=755 a.sh /bin/\n")
    assert action_of(step_keys(plan)[0]) == (
        b'{"src":"a.sh","dest":"/bin/","owner":{"user":{"User":{"ByID":1000}},"group":{"User":{"ByName":'
        b'{"name":"abc"}}}},"mode":493,"followSymlink":true,"dirCopyContents":true,"createDestPath":true,'
        b'"allowWildcard":true,"allowEmptyWildcard":true,"timestamp":-1}'
    )


def test_chown_negative_uid_is_written_as_uint32() -> None:
    # parseUID accepts "-5" (strconv.ParseInt, 32 bits); UserOpt.marshal writes uint32(-5) = 4294967291.
    key = step_keys(plan_dockerfile("FROM alpine\nCOPY --chown=-5 a /b\n"))[0]
    assert b'"owner":{"user":{"User":{"ByID":4294967291}}}' in action_of(key)


def test_non_octal_digits_in_chmod_are_unknown_not_a_mode_string() -> None:
    # dispatchCopy: ParseUint("9999", 8) fails and mode.Parse reports a NumError → the build fails.
    key = step_keys(plan_dockerfile("FROM alpine\nCOPY --chmod=9999 a /b\n"))[0]
    assert key.digest is None and key.unknown == "invalid --chmod '9999'"
    symbolic = step_keys(plan_dockerfile("FROM alpine\nCOPY --chmod=u+x a /b\n"))[0]
    assert b'"modeStr":"u+x"' in action_of(symbolic) and b'"mode"' not in action_of(symbolic)


def test_copy_onto_scratch_and_link() -> None:
    # FROM scratch: the first copy's base is empty, so the action's input is -1 and the context is input 0:
    # indexes [[-1,0,0]] is not the default pattern and is written. COPY --link there is the same op
    # (llb.Merge drops scratch inputs, leaving the copy). On an image, COPY --link is a MergeOp of two inputs,
    # {"Type":"buildkit.merge.v0","Merge":{"inputs":[{},{"input":1}]}} (input 0 omitempty), plus that copy.
    plain = step_keys(plan_dockerfile("FROM scratch\nCOPY a /\n"))[0]
    link = step_keys(plan_dockerfile("FROM scratch\nCOPY --link a /\n"))[0]
    assert plain.cache_map is not None and plain.cache_map.endswith(b',"indexes":[[-1,0,0]]}')
    assert (link.op, link.digest) == ("file", plain.digest)
    merged = step_keys(plan_dockerfile("FROM alpine\nCOPY --link a /\n"))[0]
    merge_map = b'{"Type":"buildkit.merge.v0","Merge":{"inputs":[{},{"input":1}]}}'
    assert (merged.op, merged.cache_map) == ("merge", merge_map)
    assert merged.digest == sha256(sha256(merge_map) + "@0") and merged.copy_digest == plain.digest


def test_several_sources_are_several_actions_with_indexes_from_three() -> None:
    # Inputs: the stage (0), the context (1); action i > 0 takes action i-1's output, numbered 2 + (i-1).
    # isDefaultIndexes wants input len(actions) + (i-1) for i > 0: true for two actions (2), false for three
    # (3 ≠ 2), so three sources write indexes [[0,1,-1],[2,1,-1],[3,1,0]].
    two, three = step_keys(plan_dockerfile("FROM alpine\nCOPY a b /d/\nCOPY a b c /d/\n"))
    assert two.cache_map is not None and b"indexes" not in two.cache_map
    assert three.cache_map is not None and three.cache_map.endswith(
        b',"indexes":[[0,1,-1],[2,1,-1],[3,1,0]]}'
    )
    assert [json.loads(action_of(three, i))["src"] for i in range(3)] == ["a", "b", "c"]


def test_run_env_order_args_and_replaced_keys() -> None:
    # dispatch: the image's Env first (PATH added when it has none), then each ENV/ARG with a value through
    # llb AddEnv; EnvList.ToArray keeps a key at its newest position, so ENV A again moves A to the end.
    # A --build-arg value is literal ($HOME stays); BUILDKIT_SBOM_SCAN_STAGE never enters the env
    # (nonEnvArgs); an ARG without value or default is not set.
    text = (
        "FROM alpine\nENV A=1 B=2\nARG C\nARG D=x$A\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nARG E\nENV A=3\n"
        "RUN true\n"
    )
    plan = plan_dockerfile(text, build_args={"C": "$HOME"})
    key = step_keys(plan, base_configs={"alpine": BaseConfig({})})[0]
    assert key.cache_map is not None
    env = json.loads(key.cache_map)["Exec"]["meta"]["env"]
    assert env == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "B=2",
        "C=$HOME",
        "D=x1",
        "A=3",
    ]


def exec_of(key: StepKey) -> object:
    assert key.cache_map is not None, key.unknown
    return json.loads(key.cache_map)["Exec"]


def test_run_mount_cache_default_and_with_an_id() -> None:
    # dispatchRunMounts: a cache mount without id gets CacheID = path.Clean(target) and the LLB ID
    # cacheIDNamespace ("") + "/" + id = "//root/.m2", from scratch (input -1), no output (-1), type CACHE (3),
    # sharing shared (0, omitted). The rootfs mount {"dest":"/"} (input 0, output 0 omitted) sorts first.
    # CacheMap keeps that ID: checkShouldClearCacheOpts sees "<namespace>/<dest>" with sharing 0.
    plan = plan_dockerfile("FROM alpine\nRUN --mount=type=cache,target=/root/.m2 mvn package\n")
    key = step_keys(plan, base_configs={"alpine": BaseConfig({})})[0]
    assert exec_of(key) == {
        "meta": {
            "args": ["/bin/sh", "-c", "mvn package"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "removeMountStubsRecursive": True,
        },
        "mounts": [
            {"dest": "/"},
            {
                "input": -1,
                "dest": "/root/.m2",
                "output": -1,
                "mountType": 3,
                "cacheOpt": {"ID": "//root/.m2"},
            },
        ],
    }
    # With id=m2,sharing=locked the ID and sharing are cleared since v0.13 (584ec400): "cacheOpt":{} (a set
    # pointer to an empty struct); v0.11/v0.12 kept {"ID":"/m2","sharing":2}, tried as a variant.
    text = "FROM alpine\nRUN --mount=type=cache,id=m2,sharing=locked,target=/root/.m2 mvn package\n"
    named = step_keys(plan_dockerfile(text), base_configs={"alpine": BaseConfig({})})[0]
    assert exec_of(named)["mounts"][1]["cacheOpt"] == {}  # type: ignore[index]
    assert named.cache_map is not None
    older = named.cache_map.replace(b'"cacheOpt":{}', b'"cacheOpt":{"ID":"/m2","sharing":2}')
    assert sha256(sha256(older) + "@0") in named.variants


def test_run_mount_bind_secret_tmpfs() -> None:
    # bind (default type) from the context: read-only by default (roAuto), a new input 1, no output; its
    # source selector is cleared in the CacheMap. tmpfs: scratch (-1), no output, TMPFS (4), TmpfsOpt {} (size
    # 0). Sorted by target: "/", "/src", "/tmp". Secrets come after: input -1, SECRET (1), output 0 omitted,
    # secretOpt ID "tok", mode 0400 = 256, optional (not required); target defaults to /run/secrets/<id>.
    text = (
        "FROM alpine\nWORKDIR /w\n"
        "RUN --mount=type=secret,id=tok --mount=type=tmpfs,target=/tmp --mount=source=go.mod,target=/src make\n"
    )
    key = step_keys(plan_dockerfile(text), base_configs={"alpine": BaseConfig({})})[1]
    assert exec_of(key)["mounts"] == [  # type: ignore[index]
        {"dest": "/"},
        {"input": 1, "dest": "/src", "output": -1, "readonly": True},
        {"input": -1, "dest": "/tmp", "output": -1, "mountType": 4, "TmpfsOpt": {}},
        {
            "input": -1,
            "dest": "/run/secrets/tok",
            "mountType": 1,
            "secretOpt": {"ID": "tok", "mode": 256, "optional": True},
        },
    ]


def test_run_mounts_this_module_does_not_follow_are_unknown() -> None:
    for flag in (
        "--mount=type=ssh",
        "--mount=type=bind,from=build,target=/x",
        "--mount=type=secret,id=a,env=A",
    ):
        key = step_keys(
            plan_dockerfile(f"FROM alpine\nRUN {flag} true\n"), base_configs={"alpine": BaseConfig({})}
        )[0]
        assert key.digest is None and key.unknown is not None, flag


def test_go_json_writes_invalid_utf8_as_the_replacement_character() -> None:
    # "String values encode as JSON strings coerced to valid UTF-8, replacing invalid bytes with the Unicode
    # replacement rune." A byte read with surrogateescape is a lone surrogate in Python.
    text = b"a\xffb".decode("utf-8", "surrogateescape")
    assert gojson.encode([text]) == '["a\ufffdb"]'.encode()


def test_odd_instructions_give_a_key_or_a_reason_never_an_exception() -> None:
    # Seeded random Dockerfiles from odd flag values (non-ASCII digits, bad modes, unknown sharing, URLs, git,
    # variables): every step gets a digest or an unknown reason; nothing raises.
    import random

    from inspector.errors import CacheInspectError

    rng = random.Random(7)
    flags = ["--chown=", "--chmod=", "--link", "--from=", "--exclude=", "--parents", "--mount=", "--network="]
    values = ["", "a", "1000", "root:x", "²", "-1", "u+x", "9", "type=cache", "type=tmpfs,size=²,target=/t"]
    values += ["type=secret,mode=9", "type=secret,uid=²", "type=cache,sharing=x,target=a", "none", "$X"]
    values += ["${X:-y}", "\ufffd", "https://x/y", "git@x:y.git", "/", "."]
    checked = 0
    for _ in range(400):
        lines = ["FROM alpine"]
        for _ in range(rng.randint(1, 4)):
            word = rng.choice(["COPY", "ADD", "RUN", "WORKDIR", "ENV", "USER", "FROM scratch"])
            words = [rng.choice(flags) + rng.choice(values) for _ in range(rng.randint(0, 2))]
            lines.append(
                " ".join([word, *words, *(rng.choice(values) or "x" for _ in range(rng.randint(0, 3)))])
            )
        try:
            plan = plan_dockerfile("\n".join(lines) + "\n")
        except CacheInspectError:
            continue
        for key in step_keys(plan, base_configs={"alpine": BaseConfig({})}):
            assert (key.digest is None) == (key.unknown is not None)
        checked += 1
    assert checked > 200


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        # containerd platforms normalizeArch (vendored in BuildKit): the solver's platform is normalised.
        ("linux/amd64", ("linux", "amd64", "")),
        ("linux/arm64/v8", ("linux", "arm64", "")),
        ("linux/aarch64", ("linux", "arm64", "")),
        ("linux/arm", ("linux", "arm", "v7")),
        ("linux/arm/6", ("linux", "arm", "v6")),
        ("linux/x86_64", ("linux", "amd64", "")),
    ],
)
def test_platform_as_the_solver_sees_it(platform: str, expected: tuple[str, str, str]) -> None:
    assert split_platform(platform) == expected


def test_run_key_carries_the_normalised_platform() -> None:
    # ops/exec.go: OS and Arch always, Variant only when set (omitempty): arm64/v8 writes none, arm/v7 does.
    plan = plan_dockerfile("FROM alpine\nRUN true\n")
    arm64 = step_keys(plan, platform="linux/arm64/v8", base_configs={"alpine": BaseConfig({})})[0]
    arm = step_keys(plan, platform="linux/arm/v7", base_configs={"alpine": BaseConfig({})})[0]
    assert arm64.cache_map is not None and arm64.cache_map.endswith(b'"OS":"linux","Arch":"arm64"}')
    assert arm.cache_map is not None and arm.cache_map.endswith(b'"OS":"linux","Arch":"arm","Variant":"v7"}')


def test_file_op_before_indexes_is_a_variant() -> None:
    # ops/file.go before v0.9.0 (8d707775) marshalled {Type, Actions} only: a copy onto scratch then had no
    # "indexes" key; that encoding is tried as a variant.
    key = step_keys(plan_dockerfile("FROM scratch\nCOPY a /\n"))[0]
    assert key.cache_map is not None
    old = key.cache_map.replace(b',"indexes":[[-1,0,0]]', b"")
    assert key.variants == (sha256(sha256(old) + "@0"),)
