"""The knowledge base behind `probe`, and `probe --offline` for every family with the network cut off."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from inspector.cli import run
from inspector.errors import UnknownFamily
from inspector.probe.kb import FAMILIES, FAMILY_IDS, SOURCES, TOPICS, detect_family, family_by_id
from tests.harness.paths import SHARED, schema
from tests.harness.support import validate_json
from tests.harness.vendor_proxy import check_junit

SCHEMA = schema("probe")
SPEC = SHARED / "spec" / "registries.md"


def test_every_fact_has_a_known_topic_and_resolvable_sources() -> None:
    for family in FAMILIES:
        for fact in family.facts:
            assert fact.topic in TOPICS, (family.id, fact.topic)
            assert fact.sources, (family.id, fact.topic)
            for source in fact.sources:
                assert source in SOURCES, (family.id, source)
        for source in family.cleanup.sources:
            assert source in SOURCES


def test_source_ids_exist_in_the_research_note() -> None:
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} not present")
    text = SPEC.read_text()
    listed = set(re.findall(r"^\* \[([A-Z][0-9]+)\]", text, re.M))
    assert set(SOURCES) <= listed, sorted(set(SOURCES) - listed)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.examples], ids=lambda f: f.id)
def test_families_are_recognised_from_their_hosts(family: Any) -> None:
    for host in family.examples:
        match = detect_family(host + ":443")
        assert (match.family.id, match.basis) == (family.id, "host")


def test_families_from_the_challenge_and_the_flag() -> None:
    harbor = detect_family(
        "registry.corp.example", challenge="https://registry.corp.example/service/token harbor-registry"
    )
    assert (harbor.family.id, harbor.basis) == ("harbor", "challenge")
    assert detect_family("registry.corp.example").family.id == "generic"
    assert detect_family("ghcr.io", override="quay").basis == "flag"
    assert family_by_id("ECR") is not None
    with pytest.raises(UnknownFamily, match=r"--family 'nope': expected one of .*\bquay\b") as caught:
        detect_family("x", override="nope")
    assert caught.value.exit_code == 2


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("--offline opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("family_id", FAMILY_IDS)
def test_offline_answers_for_every_family(
    family_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    family = family_by_id(family_id)
    assert family is not None
    host = family.examples[0] if family.examples else "registry.example.com"
    junit = tmp_path / "probe.xml"
    code = run(["probe", "--offline", host, "--family", family_id, "--json", "--junit", str(junit)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    validate_json(doc, SCHEMA)
    assert doc["mode"] == "offline" and doc["family"]["id"] == family_id
    assert len(doc["knowledge"]) == len(family.facts)
    assert all(c["basis"] == "documented" for c in doc["checks"])
    assert doc["recommendation"]["cleanup"]["basis"] == "documented"
    root = check_junit(junit.read_text())
    assert len(root.findall("testsuite/testcase")) == len(doc["checks"])
    code = run(["probe", "--offline", host, "--family", family_id])
    assert code == 0
    assert family.name in capsys.readouterr().out


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("host", "cache_to", "exit_code", "verdict"),
    [
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app",
            "mode=max,image-manifest=false",
            9,
            "will-not-work",
        ),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app", "mode=max", 0, "works"),
        ("quay.io/team/app", "oci-mediatypes=false", 9, "will-not-work"),
        ("ghcr.io/team/app", "mode=max", 0, "works"),
        ("registry.example.com/app", "mode=max", 0, "unknown"),
        ("europe-west1-docker.pkg.dev/p/r/app", "mode=max,oci-mediatypes=false", 0, "unknown"),
    ],
)
def test_offline_cache_to_verdicts(
    host: str, cache_to: str, exit_code: int, verdict: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = f"type=registry,ref={host}:cache,{cache_to}"
    code = run(["probe", "--offline", "--cache-to", flag, "--json"])
    doc = json.loads(capsys.readouterr().out)
    validate_json(doc, SCHEMA)
    assert (code, doc["cacheTo"]["verdict"], doc["exitCode"]) == (exit_code, verdict, exit_code)
    assert doc["target"] == host


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("extra", "form", "verdict"),
    [
        # BuildKit 0.11 writes the OCI index form (image-manifest=true exists from 0.12, default from 0.21).
        # gcr.io is served by Artifact Registry since Container Registry writes ended 2025-03-18 [C3], and
        # index caches work there [C1]: Container Registry's 2019 refusal [C1] is history, not the verdict.
        ("", "oci-index", "works"),
        # the Docker list form: no report for Artifact Registry, so unknown, as for *-docker.pkg.dev
        (",oci-mediatypes=false", "docker-manifest-list", "unknown"),
    ],
)
def test_offline_gcr_follows_the_artifact_registry_that_answers_today(
    extra: str, form: str, verdict: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = f"type=registry,ref=gcr.io/acme/app:cache,mode=max{extra}"
    code = run(
        ["probe", "--offline", "gcr.io/acme/app", "--cache-to", flag, "--buildkit-version", "0.11", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    validate_json(doc, SCHEMA)
    assert code == 0 and doc["exitCode"] == 0
    assert (doc["cacheTo"]["form"], doc["cacheTo"]["verdict"]) == (form, verdict)
    (history,) = [p for p in doc["cacheTo"]["problems"] if p["code"] == "documented-history"]
    assert history["severity"] == "info" and "2019-08-19" in history["message"]
    assert "Artifact Registry" in doc["family"]["name"]
    code = run(["probe", "--offline", "gcr.io/acme/app", "--cache-to", flag, "--buildkit-version", "0.11"])
    out = capsys.readouterr().out
    assert code == 0 and "will-not-work" not in out and "history: legacy Container Registry" in out


@pytest.mark.usefixtures("no_network")
def test_offline_021_trap_is_a_configuration_failure(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        [
            "probe",
            "--offline",
            "europe-west1-docker.pkg.dev",
            "--cache-to",
            "type=registry,ref=europe-west1-docker.pkg.dev/p/r/app:cache,oci-mediatypes=false",
            "--buildkit-version",
            "0.21",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 9
    assert doc["cacheTo"]["basis"] == "configuration"
    assert doc["cacheTo"]["form"] is None
    assert doc["recommendation"]["attributes"] == {"image-manifest": "true", "oci-mediatypes": "true"}


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    "args",
    [
        ["probe", "--offline"],
        ["probe", "--offline", "ghcr.io", "--delete"],
        ["probe", "--offline", "ghcr.io", "--family", "nope"],
        ["probe", "--offline", "ghcr.io", "--cache-to", "type=local,dest=x"],
        ["probe", "--offline", "ghcr.io", "--cache-to", 'type=registry,ref="x'],
        ["probe", "--offline", "ghcr.io", "--buildkit-version", "soon"],
        ["probe", "127.0.0.1:9/x", "--read-only", "--delete"],
        ["probe", "127.0.0.1:9/x", "--read-only"],
        ["probe", "127.0.0.1:9/x", "--family", "nope"],
        ["probe"],
    ],
)
def test_offline_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(args) == 2
    assert "cacheinspect: error:" in capsys.readouterr().err
