"""Per real cache document: which Dockerfile steps BuildKit's recomputed keys find, and how many records are exact.

The Dockerfiles are those SOURCES.md names for each export (repository, path, commit), copied here without
comments and blank lines. The expectation is derived by hand, not read from this tool: every WORKDIR, COPY
and ADD step of the Dockerfile that built a cache must be one of its records (those ops' keys hold no file
content and no base-image config), except where SOURCES.md says the export came from another version of the
Dockerfile; a RUN's key needs its base image's Env, which these tests do not have (the images cannot be
pulled here), so every RUN is ``unknown`` — except on node:21.1.0-slim, whose Env issue 18 gives, and on
alpine (see BASES).

``python -m tests.cache.test_keys_realworld`` prints the table of docs/keys.md.
"""

from __future__ import annotations

import json

import pytest

from inspector.cache.config import CacheConfig, parse_cache_config
from inspector.cache.naming.dockerfile import BaseConfig, plan_dockerfile
from inspector.cache.naming.keys import exact_records, step_keys
from tests.cache.test_keys import FULLCYCLE_NODE, NODE_21_ENV
from tests.harness.paths import REALWORLD

# antoniosasso00/cp @ 70b32ba4, backend/Dockerfile (comments and blank lines dropped: they make no op)
CP_BACKEND = r"""FROM python:3.11-slim AS builder
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN apt-get update && \
    apt-get install -y --no-install-recommends build-essential netcat-openbsd && \
    rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --upgrade pip && \
    pip install -r requirements.txt
COPY . .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
RUN apt-get update && \
    apt-get install -y --no-install-recommends netcat-openbsd && \
    rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local /usr/local
COPY --from=builder /app /app
RUN mkdir -p /app/reports && chmod 755 /app/reports
RUN chmod +x /app/start.sh
EXPOSE 8000
CMD ["/app/start.sh"]
"""


# antoniosasso00/cp @ 5641dc21, frontend/Dockerfile (comments and blank lines dropped: they make no op)
CP_FRONTEND = r"""FROM node:18-alpine AS builder
WORKDIR /app
COPY package*.json ./
RUN npm ci
COPY . .
RUN mkdir -p public
ENV NEXT_TELEMETRY_DISABLED 1
ENV NODE_ENV=production
RUN node node_modules/next/dist/bin/next build
FROM node:18-alpine AS runner
WORKDIR /app
ENV NODE_ENV=production
RUN addgroup --system --gid 1001 nodejs
RUN adduser --system --uid 1001 nextjs
RUN mkdir -p .next/static
RUN mkdir -p public
COPY --from=builder /app/.next/standalone ./
COPY --from=builder /app/.next/static ./.next/static
COPY --from=builder /app/public ./public
RUN chown -R nextjs:nodejs /app
USER nextjs
EXPOSE 3000
ENV PORT 3000
CMD ["node", "server.js"]
"""


# Malivix/drone-buildkit @ 41ceb213, test/Dockerfile (comments and blank lines dropped: they make no op)
DRONE_TEST = r"""FROM alpine AS buildc
RUN apk add --no-cache build-base
RUN echo -e "#include <stdio.h>\nint main(int ac, char *av[]){printf(\"hello c\\\\n\");return 0;}" | tee /hello.c
COPY . /foo
RUN gcc -o /a.out /hello.c
FROM alpine AS buildgo
RUN apk add --no-cache build-base
RUN apk add --no-cache go
RUN echo -e "package main\nfunc main(){println(\"hello go\")}" | tee /hello.go
RUN go build -o /a.out /hello.go
FROM alpine
COPY --from=buildc /a.out /hello1
COPY --from=buildgo /a.out /hello2
"""


# konradxmalinowski/DTO-Pattern @ 125ee613, Dockerfile (comments and blank lines dropped: they make no op)
DTO_PATTERN = r"""FROM maven:3.9-eclipse-temurin-24 AS build
WORKDIR /app
COPY pom.xml .
RUN --mount=type=cache,target=/root/.m2 mvn -q -T 1C -DskipTests dependency:go-offline
COPY src src
RUN --mount=type=cache,target=/root/.m2 mvn -q -o -T 1C -DskipTests package
FROM eclipse-temurin:24-jre
WORKDIR /app
ENV JAVA_OPTS=""
ENV SPRING_PROFILES_ACTIVE=default
COPY --from=build /app/target/DTO-Pattern-0.0.1-SNAPSHOT.jar app.jar
EXPOSE 8080
ENTRYPOINT ["/bin/sh","-c","java $JAVA_OPTS -jar app.jar"]
"""


def committed_config(folder: str) -> bytes:
    """The cache config of a committed-caches/ layout: index.json -> manifest (or index) -> config."""
    layout = REALWORLD / "committed-caches" / folder
    blobs = layout / "blobs" / "sha256"
    top: str = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    document = json.loads((blobs / top.removeprefix("sha256:")).read_bytes())
    config = document["config"] if "config" in document else document["manifests"][-1]  # index form: last
    digest: str = config["digest"]
    return (blobs / digest.removeprefix("sha256:")).read_bytes()


def config_of(name: str) -> CacheConfig:
    path = REALWORLD / name
    return parse_cache_config(path.read_bytes() if path.is_file() else committed_config(name))


# The WORKDIR/COPY/ADD steps of each Dockerfile, by label, as the plan numbers them ([stage k/n]).
CP_BACKEND_FILE_STEPS = [
    "[builder 2/6] WORKDIR /app",
    "[builder 4/6] COPY requirements.txt .",
    "[builder 6/6] COPY . .",
    "[stage-1 2/7] WORKDIR /app",
    "[stage-1 4/7] COPY --from=builder /usr/local /usr/local",
    "[stage-1 5/7] COPY --from=builder /app /app",
]
# With node:21.1.0-slim's Env (issue 18) its RUNs have keys too: every step is a record.
FULLCYCLE_NODE_STEPS = [
    "[2/6] RUN apt-get update && apt-get install -y vim && rm -rf /var/lib/apt/lists/*",
    "[3/6] WORKDIR /app",
    "[4/6] COPY package*.json ./",
    "[5/6] RUN npm install",
    "[6/6] COPY . .",
]
DOCUMENTS: list[tuple[str, str, list[str]]] = [
    # 08 and 09 are exports of the cp backend (SOURCES.md: 08 = cp-70b32ba's config, 09 = cp-f7093bf's).
    ("08-local-2025-cacheconfig.json", CP_BACKEND, CP_BACKEND_FILE_STEPS),
    ("09-local-2025-cacheconfig-dup-digests.json", CP_BACKEND, CP_BACKEND_FILE_STEPS),
    # 11 is fullcycle-node's config (the same blob, 154a166e…): see the last entry.
    ("11-local-2026-cacheconfig.json", FULLCYCLE_NODE, FULLCYCLE_NODE_STEPS),
    ("cp-70b32ba", CP_BACKEND, CP_BACKEND_FILE_STEPS),
    ("cp-f7093bf", CP_BACKEND, CP_BACKEND_FILE_STEPS),
    # "an earlier Dockerfile (its runtime had fewer COPY steps than backend/Dockerfile @ 70b32ba4)".
    ("cp-d70eea6", CP_BACKEND, [s for s in CP_BACKEND_FILE_STEPS if "/usr/local" not in s]),
    (
        "cp-5641dc2",
        CP_FRONTEND,
        [
            "[builder 2/7] WORKDIR /app",
            "[builder 3/7] COPY package*.json ./",
            "[builder 5/7] COPY . .",
            "[runner  2/10] WORKDIR /app",
            "[runner  7/10] COPY --from=builder /app/.next/standalone ./",
            "[runner  8/10] COPY --from=builder /app/.next/static ./.next/static",
            "[runner  9/10] COPY --from=builder /app/public ./public",
        ],
    ),
    # BuildKit v0.8.1 (2021): the copy action encodes as today's (timestamp and allowEmptyWildcard date from
    # v0.5); its RUNs are the encoding without removeMountStubsRecursive (added in v0.11), found as variants.
    (
        "drone-buildkit",
        DRONE_TEST,
        [
            "[buildc 2/5] RUN apk add --no-cache build-base",
            '[buildc 3/5] RUN echo -e "#include <stdio.h>\\nint main(int ac, char *av[]){printf(\\"hello c\\\\\\\\n\\");'
            'return 0;}" | tee /hello.c',
            "[buildc 4/5] COPY . /foo",
            "[buildc 5/5] RUN gcc -o /a.out /hello.c",
            "[buildgo 2/5] RUN apk add --no-cache build-base",
            "[buildgo 3/5] RUN apk add --no-cache go",
            '[buildgo 4/5] RUN echo -e "package main\\nfunc main(){println(\\"hello go\\")}" | tee /hello.go',
            "[buildgo 5/5] RUN go build -o /a.out /hello.go",
            "[stage-2 2/3] COPY --from=buildc /a.out /hello1",
            "[stage-2 3/3] COPY --from=buildgo /a.out /hello2",
        ],
    ),
    (
        "dto-pattern",
        DTO_PATTERN,
        [
            "[build 2/6] WORKDIR /app",
            "[build 3/6] COPY pom.xml .",
            "[build 5/6] COPY src src",
            "[stage-1 2/3] WORKDIR /app",
            "[stage-1 3/3] COPY --from=build /app/target/DTO-Pattern-0.0.1-SNAPSHOT.jar app.jar",
        ],
    ),
    ("fullcycle-node", FULLCYCLE_NODE, FULLCYCLE_NODE_STEPS),
]
BASES = {
    "node:21.1.0-slim": BaseConfig(NODE_21_ENV),  # issue 18
    # alpine's config sets only PATH, to the very value BuildKit defaults PATH to when an image sets none
    # (util/system DefaultPathEnvUnix): either way a RUN's env is that one entry. No User, Shell, WorkingDir.
    "alpine": BaseConfig({}),
}


@pytest.mark.parametrize(("name", "dockerfile", "expected"), DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_every_file_step_of_the_dockerfile_is_a_record(
    name: str, dockerfile: str, expected: list[str]
) -> None:
    digests = {record.digest for record in config_of(name).records}
    keys = step_keys(plan_dockerfile(dockerfile), base_configs=BASES)
    found = [key.step.label() for key in keys if {key.digest, *key.variants} & digests]
    assert found == expected
    for key in keys:  # without the base config a RUN has no key, and says why
        if key.step.kind == "RUN" and key.step.root_image not in BASES:
            assert key.digest is None and key.unknown is not None and "RUN env unknown" in key.unknown


def table() -> list[tuple[str, int, int, int, int, int]]:
    """Per document: records, records with inputs (steps), steps with a key, keys in the cache, exact records."""
    rows = []
    for name, dockerfile, _ in DOCUMENTS:
        config = config_of(name)
        plan = plan_dockerfile(dockerfile)
        keys = step_keys(plan, base_configs=BASES)
        digests = {record.digest for record in config.records}
        rows.append(
            (
                name,
                len(config.records),
                sum(1 for record in config.records if not record.is_root),
                sum(1 for key in keys if key.digest is not None),
                sum(1 for key in keys if {key.digest, *key.variants} & digests),
                len(exact_records(config.records, plan, keys)),
            )
        )
    return rows


if __name__ == "__main__":
    print("| document | records | step records | steps with a key | keys in the cache | exact records |")
    print("|---|---|---|---|---|---|")
    for row in table():
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def test_bases_named_exactly_tell_apart_one_op_on_two_bases() -> None:
    # dto-pattern's config (read by hand): records 8 and 9 both have digest 807b3e87… (WORKDIR /app); 8 links
    # roots 0 and 6, 9 links roots 3 and 7. Record 4 (COPY pom.xml, only in the build stage) links 8, and
    # record 12 (COPY --from=build …) links 9: so roots {0, 6} are maven's (build), {3, 7} temurin's.
    # Without that knowledge both WORKDIRs claim both records and neither is pinned; with the bases' roots
    # (what --resolve-bases gives once it names them exactly) each is pinned to its own record, and the
    # chain continues: 4 (COPY pom.xml), 13 (COPY src src, after a RUN without a key), 12 (COPY --from=build).
    config = config_of("dto-pattern")
    plan = plan_dockerfile(DTO_PATTERN)
    keys = step_keys(plan)
    digests = [record.digest for record in config.records]
    assert (
        digests[8] == digests[9] == "sha256:807b3e8722c68572736f54d83fd741a5b1d69ccbef218fae52b4149a56d232ce"
    )
    assert 8 not in exact_records(config.records, plan, keys) and 9 not in exact_records(
        config.records, plan, keys
    )
    roots = {"maven:3.9-eclipse-temurin-24": {0, 6}, "eclipse-temurin:24-jre": {3, 7}}
    pinned = {
        index: [step.label() for step in steps]
        for index, steps in exact_records(config.records, plan, keys, roots).items()
    }
    assert pinned == {
        8: ["[build 2/6] WORKDIR /app"],
        4: ["[build 3/6] COPY pom.xml ."],
        13: ["[build 5/6] COPY src src"],
        9: ["[stage-1 2/3] WORKDIR /app"],
        12: ["[stage-1 3/3] COPY --from=build /app/target/DTO-Pattern-0.0.1-SNAPSHOT.jar app.jar"],
    }
