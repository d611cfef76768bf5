"""--context: the files a COPY takes from a local context against the files of a cached COPY layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from inspector.cache import contextdiff
from inspector.cache.contextdiff import (
    LayerFiles,
    compare_chain,
    compare_versions,
    context_files,
    copy_arguments,
    copy_destination,
    diff_files,
    layer_files,
)
from inspector.cache.naming.dockerfile import plan_dockerfile
from inspector.oci.digest import Digest


def d(char: str) -> Digest:
    return Digest("sha256:" + char * 64)


def tar(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo("app/")
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), mode
            archive.addfile(info, io.BytesIO(content))
        whiteout = tarfile.TarInfo("app/.wh.old.txt")
        archive.addfile(whiteout, io.BytesIO(b""))
    return buffer.getvalue()


def context(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "main.c").write_bytes(b"int main;\n")
    (tmp_path / "src" / "util.c").write_bytes(b"util\n")
    (tmp_path / "build.log").write_bytes(b"ignored\n")
    (tmp_path / ".dockerignore").write_text("# logs\n*.log\n.dockerignore\n")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    return tmp_path


def test_copy_dot_dot_under_a_workdir_lands_under_it_without_ignored_files(tmp_path: Path) -> None:
    # WORKDIR /app then `COPY . .`: dest "." is a directory (convert.go), so /app/; the context's contents
    # land under app/ (dirCopyContents); build.log and .dockerignore are excluded by .dockerignore.
    plan = plan_dockerfile("FROM alpine\nWORKDIR /app\nCOPY . .\n")
    step = plan.stages[0].steps[1]
    assert copy_arguments(step) == (["."], ".")
    dest = copy_destination(step, ".")
    assert dest == "/app/"
    files = context_files(context(tmp_path), ["."], dest)
    assert files is not None
    assert sorted(files) == ["app/main.c", "app/src/util.c"]
    assert files["app/main.c"][1] == 0o644


def test_a_file_source_lands_at_dest_or_inside_a_directory_dest(tmp_path: Path) -> None:
    root = context(tmp_path)
    assert context_files(root, ["main.c"], "/app/") == {"app/main.c": (sha(b"int main;\n"), 0o644)}
    assert list(context_files(root, ["main.c"], "/app/prog.c") or {}) == ["app/prog.c"]
    assert context_files(root, ["../etc/passwd"], "/app/") == {}  # outside the context: nothing


def test_layer_files_read_gzip_skip_directories_and_keep_whiteouts() -> None:
    layer = tar({"app/main.c": b"int main;\n"})
    for blob, media_type in (
        (layer, "application/vnd.oci.image.layer.v1.tar"),
        (gzip.compress(layer), "application/vnd.oci.image.layer.v1.tar+gzip"),
    ):
        files = layer_files(blob, media_type)
        assert files is not None and files == {
            "app/main.c": (hashlib.sha256(b"int main;\n").hexdigest(), 0o644),
            "app/old.txt": None,
        }
    assert layer_files(layer, "application/vnd.oci.image.layer.v1.tar+zstd") is None
    assert layer_files(b"not a tar", "application/vnd.oci.image.layer.v1.tar+gzip") is None


def test_diff_names_changed_added_removed_and_mode(tmp_path: Path) -> None:
    root = context(tmp_path)
    local = context_files(root, ["."], "/app/")
    assert local is not None
    cached = layer_files(tar({"app/main.c": b"int main(void);\n", "app/gone.c": b"x"}), "tar")
    assert cached is not None
    assert diff_files(local, cached) == ("removed app/gone.c", "changed app/main.c", "added app/src/util.c")
    same = layer_files(tar({"app/main.c": b"int main;\n", "app/src/util.c": b"util\n"}, mode=0o755), "tar")
    assert same is not None
    assert diff_files(local, same) == ("mode app/main.c 755 -> 644", "mode app/src/util.c 755 -> 644")


def test_heredocs_are_not_guessed_wildcards_match_files() -> None:
    plan = plan_dockerfile("FROM alpine\nCOPY *.c /app/\nCOPY --chown=1:1 a b /x/\nCOPY <<EOF /f\nhi\nEOF\n")
    wild, two, heredoc = plan.stages[0].steps
    assert copy_arguments(wild) == (["*.c"], "/app/")
    assert copy_arguments(heredoc) is None
    assert copy_arguments(two) == (["a", "b"], "/x/")
    # No WORKDIR: the base image's WorkingDir is where a relative destination lands.
    assert copy_destination(two, "sub/", "/srv") == "/srv/sub/"


def test_a_layer_unpacking_past_the_cap_cannot_be_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    # A gzip bomb is read member by member against UNPACKED_LIMIT; past it the layer "cannot tell" (None).
    layer = gzip.compress(tar({"app/big": b"x" * 64}))
    assert layer_files(layer, "application/vnd.oci.image.layer.v1.tar+gzip") is not None
    monkeypatch.setattr(contextdiff, "UNPACKED_LIMIT", 63)
    assert layer_files(layer, "application/vnd.oci.image.layer.v1.tar+gzip") is None


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_copied_file_equal_to_the_one_below_is_looked_up_in_the_lower_layers() -> None:
    # Real case (fullcycle-node, mynode_app @ e4384a8d): `COPY package*.json ./` then `RUN npm install` then
    # `COPY . .`; the last layer has no app/package.json because BuildKit stores a diff and the file was
    # already there, equal. So a local file missing from the copy's own layer is looked up below, topmost first.
    local = {"app/index.js": (sha(b"js"), 0o644), "app/package.json": (sha(b"{}"), 0o644)}
    top, npm, package = d("1"), d("2"), d("3")
    layers: dict[Digest, LayerFiles] = {
        top: {"app/index.js": (sha(b"js"), 0o644)},
        npm: {"app/node_modules/x.js": (sha(b"x"), 0o644)},
        package: {"app/package.json": (sha(b"{}"), 0o644)},
    }
    chain = (top, npm, package)

    def read(blob: Digest) -> LayerFiles | None:
        return layers.get(blob)

    assert compare_chain(local, chain, read) == ((), False)
    # The lower version differs: a certain difference.
    layers[package] = {"app/package.json": (sha(b"{1}"), 0o644)}
    assert compare_chain(local, chain, read) == (("changed app/package.json",), False)
    # In no layer at all: added. Whited out above: added too.
    layers[package] = {}
    assert compare_chain(local, chain, read) == (("added app/package.json",), False)
    layers[package] = {"app/package.json": (sha(b"{}"), 0o644)}
    layers[npm] = {"app/package.json": None}
    assert compare_chain(local, chain, read) == (("added app/package.json",), False)
    # An unreadable layer on the way: undecided, not a difference.
    del layers[npm]
    assert compare_chain(local, chain, read) == ((), True)
    # Undecided for the only version: explain cannot tell; a certain difference in another file decides.
    assert compare_versions(local, {7: chain}, read) == (None, ())
    layers[top] = {"app/index.js": (sha(b"js2"), 0o644)}
    assert compare_versions(local, {7: chain}, read) == (("changed app/index.js",), ())


def test_a_wildcard_copies_the_matching_files_into_the_destination(tmp_path: Path) -> None:
    # `COPY package*.json ./` (fullcycle-node): both matches land in the directory; a match that is a
    # directory is copied as itself, which is not worked out here -> None.
    (tmp_path / "package.json").write_bytes(b"{}")
    (tmp_path / "package-lock.json").write_bytes(b"{}")
    (tmp_path / "index.js").write_bytes(b"")
    assert sorted(context_files(tmp_path, ["package*.json"], "/app/") or {}) == [
        "app/package-lock.json",
        "app/package.json",
    ]
    (tmp_path / "package.d").mkdir()
    assert context_files(tmp_path, ["package*"], "/app/") is None


def test_a_context_past_the_cap_cannot_be_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A context too big to hash is "cannot tell" (None), not an error: the rest of the verdict still stands.
    root = context(tmp_path)
    assert context_files(root, ["."], "/app/") is not None
    monkeypatch.setattr(contextdiff, "UNPACKED_LIMIT", 12)
    assert context_files(root, ["."], "/app/") is None
