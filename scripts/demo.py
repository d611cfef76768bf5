"""The embedded default: a throwaway registry seeded with the sample caches, each one shown, one explained.

Run through ``scripts/demo.sh`` (which prepares .venv and docker-registry first).
``--keep`` leaves the registry running and holds the terminal (Ctrl-C stops the registry and deletes its data);
it prints the commands to try from another terminal, the ones docs/ shows (``$REGISTRY`` is this registry).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from inspector.cli import run
from tests.harness.registry import (
    GC_DEMO_REPOSITORY,
    RegistryUnavailable,
    load_samples,
    seed_gc_demo,
    seed_sample,
    start_registry,
)


def _naming_args(sample: dict[str, object], host: str) -> list[str]:
    """For samples built from a Dockerfile: name stages from it, resolve bases, read the built image."""
    dockerfile = sample.get("dockerfile")
    if not isinstance(dockerfile, str):
        return []
    argv = ["--dockerfile", str(Path("testdata") / dockerfile)]
    push = sample.get("push")
    if isinstance(push, dict) and any(str(target).startswith("library/") for target in push.values()):
        argv += ["--build-arg", f"REGISTRY={host}", "--resolve-bases"]  # its bases are in this registry
    if isinstance(push, dict) and "image" in push:
        argv += ["--image", f"{host}/{push['image']}"]
    return argv


EXPLAIN_SAMPLE = "explain-demo"


def explain_runs(host: str) -> list[tuple[list[str], str]]:
    """The demo's two ``explain`` runs on samples/explain-demo (argv, what it shows): the Dockerfile that wrote
    the cache, then its variant with an edited RUN."""
    sample = next(s for s in load_samples() if s["name"] == EXPLAIN_SAMPLE)
    files = sample["explain"]
    common = [
        "--build-arg",
        f"REGISTRY={host}",
        "--resolve-bases",
        "--context",
        str(Path("testdata") / files["context"]),
    ]
    ref = f"{host}/samples/{EXPLAIN_SAMPLE}:latest"
    return [
        (
            ["explain", ref, "-f", str(Path("testdata") / sample["dockerfile"]), *common],
            "the Dockerfile that wrote this cache, same base, same context: every step hits",
        ),
        (
            ["explain", ref, "-f", str(Path("testdata") / files["edited"]), *common, "--strict"],
            "its first RUN edited: that step misses for its instruction, the step after it for its parent "
            "(--strict: exit 10)",
        ),
    ]


def _try_these(host: str) -> str:
    """What --keep prints: that the terminal is held, and the commands to try from another one."""
    cli = Path(".venv/bin/cacheinspect").resolve()
    return f"""
# The registry keeps running at {host}: this terminal is held until Ctrl-C, which stops the registry
# and deletes its data. In another terminal (docs/ uses $REGISTRY for this registry):

export REGISTRY={host}
export PATH="{cli.parent}:$PATH"    # or: pipx install .
cacheinspect show $REGISTRY/samples/multistage-max:image-manifest      # docs/show.md: how to read it
cacheinspect show $REGISTRY/samples/missing-blob:latest --strict       # an unhealthy cache: exit 10
cacheinspect du $REGISTRY/samples/multistage-max                       # sizes per tag, unique and shared
cacheinspect diff $REGISTRY/samples/multistage-max:image-manifest $REGISTRY/samples/multistage-min:latest
printf 'main\\nfeature/a\\nrefs/pull/8/head\\n' > branches.txt        # docs/gc.md: the live branches
cacheinspect gc $REGISTRY/{GC_DEMO_REPOSITORY} -t '{{branch}}-buildcache' -t 'pr-{{number}}-buildcache' \\
    --branches-file branches.txt --protect main                        # dry run: the plan
cacheinspect probe --cache-to "type=registry,ref=$REGISTRY/demo/app-cache:main-buildcache,mode=max"
# docs/explain.md: will a build of the edited Dockerfile hit the cache? cold from [4/5], --strict: exit 10
cacheinspect explain $REGISTRY/samples/explain-demo:latest -f testdata/dockerfiles/explain-demo-edited.Dockerfile \\
    --build-arg REGISTRY=$REGISTRY --resolve-bases --context testdata/contexts/explain-demo --strict
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--keep", action="store_true", help="keep the registry running, holding this terminal until Ctrl-C"
    )
    parser.add_argument(
        "--json", action="store_true", help="print show --json and explain --json instead of the human views"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cacheinspect-demo-") as workdir:
        try:
            registry = start_registry(Path(workdir))
        except RegistryUnavailable as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
        try:
            samples = load_samples()
            print(f"# local registry {registry.host} (docker-registry, pid {registry.process.pid})")
            for sample in samples:
                seed_sample(registry.host, f"samples/{sample['name']}", sample)
            print(f"# pushed {len(samples)} sample caches from testdata/ with oras-py\n")
            worst = 0
            for sample in samples:
                for tag in sample["tags"]:
                    ref = f"{registry.host}/samples/{sample['name']}:{tag}"
                    argv = [
                        "show",
                        ref,
                        *_naming_args(sample, registry.host),
                        *(["--json"] if args.json else []),
                    ]
                    print(f"$ cacheinspect {' '.join(argv)}")
                    print(f"# {sample['notes']}")
                    code = run(argv)
                    print(f"# exit code {code}\n")
                    worst = max(worst, 0 if code in (0, 8) else code)
            print(f"$ cacheinspect tags {registry.host}/samples/multistage-max")
            run(["tags", f"{registry.host}/samples/multistage-max"])
            for argv, shows in explain_runs(registry.host):
                argv += ["--json"] if args.json else []
                ref_and_file, options = argv[:4], argv[4:]  # two lines, as docs/explain.md writes it
                print(f"\n$ cacheinspect {' '.join(ref_and_file)} \\\n    {' '.join(options)}")
                print(f"# {shows}")
                print(f"# exit code {run(argv)}")
            if args.keep:
                # a kill (not only Ctrl-C) also stops the registry and deletes its data, through the finally below
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
                seed_gc_demo(registry.host)
                print(_try_these(registry.host), flush=True)
                try:
                    while registry.alive():
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
            return worst
        finally:
            registry.stop()


if __name__ == "__main__":
    sys.exit(main())
