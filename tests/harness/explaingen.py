"""Caches of a "previous build" whose records carry the BuildKit keys of its Dockerfile, for ``explain``.

``previous_cache`` keys each step with ``inspector.cache.naming.keys.step_keys`` (its WORKDIR, ``COPY . .`` and
RUN encodings are checked against the real exports 08, 09, 11 and fullcycle-node in tests/cache/test_keys.py),
with RUN's environment taken from the base image's config (``PATH_ENV``, what fixturegen writes). Used by
tests/integration/test_explain.py and the ``explain-demo`` sample (tests/harness/make_testdata.py).
"""

from __future__ import annotations

from typing import Literal

from inspector.cache.naming.dockerfile import BaseConfig, plan_dockerfile
from inspector.cache.naming.keys import step_keys
from tests.harness.fixturegen import (
    BaseImage,
    Build,
    CacheExport,
    File,
    LayerSpec,
    Overrides,
    Stage,
    Step,
    copy,
    generate,
    workdir,
)
from tests.harness.fixturegen import run as run_step

__all__ = ["CONTEXT_FILES", "PATH_ENV", "base_image", "previous_cache"]

PATH_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}  # fixturegen's image Env
CONTEXT_FILES = {"main.c": b"int main(void) { return 0; }\n", "Makefile": b"all:\n\tcc main.c\n"}
"""The build context's files, as the cached ``COPY . .`` layer holds them under /app (mode 0644)."""


def base_image(version: int) -> BaseImage:
    """A one-layer base image; each version has other bytes, so another digest and ChainID."""
    layer = LayerSpec(files=(File("etc/base-release", f"base {version}\n".encode()),))
    return BaseImage(f"explain/base:{version}", (layer,))


def previous_cache(
    dockerfile: str,
    base: BaseImage,
    *,
    build_args: dict[str, str] | None = None,
    started_at: str,
    mode: Literal["min", "max"] = "max",
) -> CacheExport:
    """The cache of building ``dockerfile`` (one stage: WORKDIR /app, ``COPY . .``, RUNs) on ``base``, its
    records keyed as BuildKit keys them."""
    plan = plan_dockerfile(dockerfile, build_args=build_args, platform="linux/amd64")
    base_ref = plan.stages[0].base_ref or ""
    keys = step_keys(plan, base_configs={base_ref: BaseConfig(PATH_ENV)})
    steps: list[Step] = []
    for key in keys:
        assert key.digest is not None, key.unknown
        pinned = Overrides(record_digest=key.digest)
        step = key.step
        if step.kind == "WORKDIR":
            steps.append(workdir(step.args[0], overrides=pinned))
        elif step.kind == "COPY":
            files = {f"app/{name}": data for name, data in CONTEXT_FILES.items()}
            steps.append(copy(".", dest=".", files=files, overrides=pinned))
        else:
            steps.append(run_step(step.args[0], {f"out/{step.number}.txt": step.args[0]}, overrides=pinned))
    return generate(Build((Stage("stage-0", base, tuple(steps)),), mode=mode, started_at=started_at))
