"""copy against the real registry: mounts on one registry, streams between two, and the copy shows the same.

Every sample of testdata/ that is a cache with all its blobs is copied; ``show`` of the copy must give the
source's stages, records and health (the config blob is the same bytes, so the same analysis must follow).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.cache.copy import execute_copy, plan_copy
from inspector.cache.report import inspect_cache, report_to_json
from inspector.cache.source import RegistrySource
from inspector.oci.digest import sha256_digest
from inspector.oci.models import Descriptor
from inspector.oci.reference import Reference, parse_reference
from inspector.registry.client import ClientOptions, RegistryClient
from tests.harness.paths import TESTDATA
from tests.harness.registry import LocalRegistry, start_registry
from tests.harness.support import run_cli

CACHE_FORMS = {"image-manifest", "oci-index", "docker-manifest-list"}


def cache_tags(samples: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(sample, tag, form) of every cache tag whose blobs are all there."""
    return [
        (s["name"], tag, form)
        for s in samples
        if not s["removed_blobs"]
        for tag, form in s["forms"].items()
        if form in CACHE_FORMS and tag in s["tags"]
    ]


@pytest.fixture(scope="module")
def other_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    instance = start_registry(tmp_path_factory.mktemp("copy-destination"))
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[RegistryClient]:
    with RegistryClient(ClientOptions(concurrency=4)) as c:
        yield c


def shown(client: RegistryClient, ref: Reference) -> dict[str, Any]:
    """What ``show --json`` says about the cache's content: stages, records, layers, health."""
    doc = report_to_json(inspect_cache(RegistrySource(client, ref)))
    return {key: doc[key] for key in ("stages", "records", "configLayers", "health", "totalSize")}


def test_every_sample_copies_within_and_across_registries(
    registry: LocalRegistry,
    other_registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    samples: list[dict[str, Any]],
    client: RegistryClient,
) -> None:
    tags = cache_tags(samples)
    assert len(tags) >= 12  # every sample but not-a-cache and missing-blob; multistage-max three times
    for name, tag, form in tags:
        source = parse_reference(f"{registry.host}/samples/{name}:{tag}")
        expected = shown(client, source)
        # Same registry, another repository: every blob is mounted; the manifest keeps its bytes.
        mounted = parse_reference(f"{registry.host}/copies/{name}:{tag}")
        result = execute_copy(client, plan_copy(client, source, mounted))
        assert result.plan.source_form == form, name
        assert {b.action for b in result.plan.layers} <= {"mount", "present"}, name
        assert result.bytes_streamed == 0 and result.mount_declined == 0, name
        assert client.head_manifest(mounted).digest == seeded[name][tag], name
        assert shown(client, mounted) == expected, (name, tag)
        # Another registry, converted to each form: streamed, and still the same cache.
        for target in ("image-manifest", "oci-index"):
            across = parse_reference(f"{other_registry.host}/copies/{name}:{tag}-{target}")
            result = execute_copy(client, plan_copy(client, source, across, to=target))
            assert result.plan.target_form == target
            assert client.get_manifest(across).media_type == (
                "application/vnd.oci.image.manifest.v1+json"
                if target == "image-manifest"
                else "application/vnd.oci.image.index.v1+json"
            )
            copied = shown(client, across)
            assert copied["stages"] == expected["stages"], (name, tag, target)
            assert copied["records"] == expected["records"], (name, tag, target)
            assert copied["health"]["ok"] == expected["health"]["ok"], (name, tag, target)
            assert copied["totalSize"] == expected["totalSize"]


def test_cross_registry_streams_each_blob_once_and_skips_what_is_there(
    registry: LocalRegistry,
    other_registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    client: RegistryClient,
) -> None:
    """multistage-max's config lists 10 layer entries of 10 distinct blobs (samples.json): the first copy
    streams the 10 layers and sends the config; a second copy of the same cache finds all 11 there."""
    layout = TESTDATA / "layouts" / "multistage-max"
    source = parse_reference(f"{registry.host}/samples/multistage-max:image-manifest")
    destination = parse_reference(f"{other_registry.host}/fresh/multistage-max:cache")
    plan = plan_copy(client, source, destination)
    assert [b.action for b in plan.blobs] == ["stream"] * 11
    # The bytes to move are the sizes of the blob files in the layout, summed by hand from disk.
    on_disk = sum((layout / "blobs" / "sha256" / b.descriptor.digest.hex).stat().st_size for b in plan.layers)
    assert plan.bytes_for("stream") == on_disk + len(plan.config_raw)
    result = execute_copy(client, plan)
    assert result.streamed == 10 and result.bytes_streamed == on_disk
    again = plan_copy(client, source, parse_reference(f"{other_registry.host}/fresh/multistage-max:second"))
    assert {b.action for b in again.blobs} == {"present"}


def test_mount_declined_falls_back_to_the_upload_session(
    registry: LocalRegistry, client: RegistryClient
) -> None:
    """distribution answers a mount whose ``from`` repository lacks the blob with 202 and an open upload
    session (registry/handlers/blobupload.go: a failed mount falls through to a new upload)."""
    data = b"a blob nobody has mounted anywhere\n"
    descriptor = Descriptor("application/octet-stream", sha256_digest(data), len(data))
    target = parse_reference(f"{registry.host}/declined/target:x").repository
    empty = parse_reference(f"{registry.host}/declined/empty:x").repository
    session = client.mount_blob(target, descriptor.digest, empty)
    assert session is not None and session.status_code == 202
    client.upload_blob_stream(target, descriptor, iter([data[:10], data[10:]]), session=session)
    assert client.head_blob(target, descriptor.digest).exists


def test_cli_dry_run_writes_nothing(
    registry: LocalRegistry, other_registry: LocalRegistry, seeded: Any
) -> None:
    dst = f"{other_registry.host}/dry/three-stages:cache"
    result = run_cli("copy", f"{registry.host}/samples/three-stages:latest", dst, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["applied"] is False and doc["bytes"]["stream"] > 0 and doc["bytes"]["mount"] == 0
    assert {b["action"] for b in doc["blobs"]} == {"stream"}
    assert httpx.get(f"{other_registry.url}/v2/dry/three-stages/tags/list").status_code == 404
    for blob in doc["blobs"]:
        assert (
            httpx.head(f"{other_registry.url}/v2/dry/three-stages/blobs/{blob['digest']}").status_code == 404
        )
    human = run_cli("copy", f"{registry.host}/samples/three-stages:latest", dst, "--dry-run")
    assert human.returncode == 0 and "would copy:" in human.stdout
    # -o like the other commands: json is --json's document, table the human view, tsv refused (exit 2).
    src = f"{registry.host}/samples/three-stages:latest"
    as_json = run_cli("copy", src, dst, "--dry-run", "-o", "json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["blobs"] == doc["blobs"]
    as_table = run_cli("copy", src, dst, "--dry-run", "-o", "table")
    assert as_table.returncode == 0 and as_table.stdout == human.stdout
    tsv = run_cli("copy", src, dst, "--dry-run", "-o", "tsv")
    assert tsv.returncode == 2 and tsv.stderr.splitlines()[0].endswith(
        "copy prints one plan, not rows: use -o json"
    )


def test_cli_refuses_to_move_a_taken_tag_unless_forced(registry: LocalRegistry, seeded: Any) -> None:
    taken = f"{registry.host}/samples/copy-link:latest"
    before = seeded["copy-link"]["latest"]
    refused = run_cli("copy", f"{registry.host}/samples/loop:latest", taken)
    assert refused.returncode == 5, refused.stderr
    assert refused.stderr.startswith("cacheinspect: error: copy:") and "Traceback" not in refused.stderr
    with RegistryClient() as c:
        assert c.head_manifest(parse_reference(taken)).digest == before
    forced = run_cli("copy", f"{registry.host}/samples/loop:latest", f"{registry.host}/forced/t:x")
    assert forced.returncode == 0, forced.stderr
    forced = run_cli(
        "copy", f"{registry.host}/samples/copy-link:latest", f"{registry.host}/forced/t:x", "--force"
    )
    assert forced.returncode == 0, forced.stderr
    assert "moved the tag from" in forced.stdout
    with RegistryClient() as c:
        assert c.head_manifest(parse_reference(f"{registry.host}/forced/t:x")).digest == before


def test_cli_missing_blob_and_bad_form_are_one_line_errors(registry: LocalRegistry, seeded: Any) -> None:
    missing = run_cli("copy", f"{registry.host}/samples/missing-blob:latest", f"{registry.host}/nope/x:y")
    assert missing.returncode == 3, missing.stderr
    assert "nothing was copied" in missing.stderr and "Traceback" not in missing.stderr
    assert httpx.get(f"http://{registry.host}/v2/nope/x/tags/list").status_code == 404
    bad = run_cli(
        "copy", f"{registry.host}/samples/loop:latest", f"{registry.host}/nope/x:y", "--to", "docker"
    )
    assert bad.returncode == 2 and "--to" in bad.stderr
    image = run_cli("copy", f"{registry.host}/samples/not-a-cache:image", f"{registry.host}/nope/x:y")
    assert image.returncode == 8 and "not a BuildKit cache" in image.stderr


def test_cli_converts_and_show_agrees(registry: LocalRegistry, seeded: Any, tmp_path: Path) -> None:
    """The oci-index tag of multistage-max, copied --to image-manifest by the CLI, shows the same stages."""
    src = f"{registry.host}/samples/multistage-max:oci-index"
    dst = f"{registry.host}/converted/multistage-max:im"
    done = run_cli("copy", src, dst, "--to", "image-manifest")
    assert done.returncode == 0, done.stderr
    assert "(oci-index -> image-manifest)" in done.stdout
    a = json.loads(run_cli("show", src, "--json").stdout)
    b = json.loads(run_cli("show", dst, "--json").stdout)
    assert a["stages"] == b["stages"] and a["health"]["ok"] == b["health"]["ok"]


@pytest.mark.parametrize("fault", ["corrupt", "truncate"])
def test_a_lying_source_leaves_no_blob_and_no_tag(
    registry: LocalRegistry, other_registry: LocalRegistry, seeded: Any, fault: str
) -> None:
    """A source that serves a layer with one byte flipped, or half of it, fails the copy (exit 8 or 6) before
    the upload completes: the destination has neither that blob nor the tag (the CLI, in a subprocess)."""
    from tests.harness.faultproxy import FaultProxy

    layout = TESTDATA / "layouts" / "multistage-min"
    (entry,) = json.loads((layout / "index.json").read_bytes())["manifests"]
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes())
    config = manifest["config"]["digest"]  # fetched (and re-fetched when spoiled) while planning
    proxy = FaultProxy(registry.url)
    try:
        proxy.force(fault, method="GET", kind="blob", match=lambda _m, path: config not in path, limit=1)
        dst = f"{other_registry.host}/lied/{fault}:cache"
        result = run_cli(
            "copy", f"{proxy.host}/samples/multistage-min:latest", dst, "--concurrency", "1", "--json"
        )
        assert result.returncode in (6, 8), result.stderr
        assert "Traceback" not in result.stderr
        (spoiled,) = [s for s in proxy.injected if s.fault == fault]
        digest = spoiled.path.rsplit("/", 1)[1]
        assert httpx.head(f"{other_registry.url}/v2/lied/{fault}/blobs/{digest}").status_code == 404
        assert httpx.head(f"{other_registry.url}/v2/lied/{fault}/manifests/cache").status_code == 404
    finally:
        proxy.close()


STREAM_SCRIPT = """
import hashlib, sys
from inspector.registry.client import RegistryClient
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor
from inspector.oci.reference import parse_reference
src_host, dst_host, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunk = bytes(range(256)) * 4096  # 1 MiB
digest = hashlib.sha256()
for _ in range(mib):
    digest.update(chunk)
blob = Descriptor("application/octet-stream", Digest("sha256:" + digest.hexdigest()), mib << 20)
with RegistryClient() as client:
    src = parse_reference(src_host + "/big/src:x").repository
    dst = parse_reference(dst_host + "/big/dst:x").repository
    client.upload_blob_stream(src, blob, (chunk for _ in range(mib)))
    with client.open_blob(src, blob) as chunks:
        client.upload_blob_stream(dst, blob, chunks)
    assert client.head_blob(dst, blob.digest).exists
# VmHWM: this process's own peak. getrusage's ru_maxrss would start at the forking parent's peak
# (Linux carries it over fork and exec), and pytest's process can be far bigger than this one.
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak_kib // 1024)
"""


def test_a_large_blob_streams_in_bounded_memory(
    registry: LocalRegistry, other_registry: LocalRegistry
) -> None:
    """256 MiB up to one registry and across to another, in a fresh process: its peak RSS stays far below
    the blob's size (it once held every upload whole: httpx reads a body the auth flow may resend)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", STREAM_SCRIPT, registry.host, other_registry.host, "256"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mib = int(done.stdout.strip())
    assert peak_mib < 192, f"peak RSS {peak_mib} MiB for a 256 MiB blob"
