"""``inspector.registry.ecr`` against ECR's documented API contract, with botocore's Stubber on a real boto3 client.

The answers are shaped as the AWS API reference documents them (registries.md [E10]: BatchDeleteImage,
and the DescribeImages / GetAuthorizationToken pages beside it); the Stubber checks each request against
botocore's own ECR service model, so a wrong parameter name or a >100-id call fails here. moto does not
paginate DescribeImages and never throttles, which is why these contracts are stubbed.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from inspector.errors import Denied, RateLimited, UsageError
from inspector.oci.digest import sha256_digest
from inspector.registry.ecr import BATCH_LIMIT, EcrClient, ImageId, parse_ecr_host

ACCOUNT = "123456789012"


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ecr", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def make(client: Any, sleeps: list[float] | None = None, attempts: int = 6) -> EcrClient:
    sink: list[float] = sleeps if sleeps is not None else []
    return EcrClient(ACCOUNT, client=client, attempts=attempts, sleep=sink.append)


def digest(n: int) -> str:
    return str(sha256_digest(f"image {n}"))


def test_parse_ecr_host() -> None:
    assert parse_ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com") == (ACCOUNT, "eu-west-1")
    assert parse_ecr_host("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com") == (ACCOUNT, "us-east-1")
    assert parse_ecr_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn") == (ACCOUNT, "cn-north-1")
    assert parse_ecr_host("public.ecr.aws") is None
    assert parse_ecr_host("12345.dkr.ecr.eu-west-1.amazonaws.com") is None  # account ids have 12 digits


def test_describe_images_follows_next_token(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    pushed = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    page1 = {
        "imageDetails": [
            {"imageDigest": digest(1), "imageTags": ["main-buildcache"], "imagePushedAt": pushed},
            {"imageDigest": digest(2), "imagePushedAt": pushed},  # untagged: no imageTags member
        ],
        "nextToken": "t1",
    }
    page2 = {"imageDetails": [{"imageDigest": digest(3), "lastRecordedPullTime": pushed}]}
    stub.add_response(
        "describe_images", page1, {"registryId": ACCOUNT, "repositoryName": "acme/r", "maxResults": 1000}
    )
    stub.add_response(
        "describe_images",
        page2,
        {"registryId": ACCOUNT, "repositoryName": "acme/r", "maxResults": 1000, "nextToken": "t1"},
    )
    images = make(client).images("acme/r")
    assert [str(i.digest) for i in images] == [digest(1), digest(2), digest(3)]
    assert images[0].tags == ("main-buildcache",) and images[1].tags == ()
    assert images[0].pushed_at == pushed and images[2].last_pulled == pushed and images[2].pushed_at is None


def test_batch_delete_sends_at_most_100_ids_per_call(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    ids = [ImageId(digest=sha256_digest(f"image {n}")) for n in range(250)]
    # 250 ids: calls of 100, 100 and 50 (BatchDeleteImage's imageIds holds at most 100).
    for start, end in ((0, 100), (100, 200), (200, 250)):
        chunk = [{"imageDigest": str(i.digest)} for i in ids[start:end]]
        stub.add_response(
            "batch_delete_image",
            {"imageIds": chunk, "failures": []},
            {"registryId": ACCOUNT, "repositoryName": "acme/r", "imageIds": chunk},
        )
    deleted, failures = make(client).batch_delete("acme/r", ids)
    assert BATCH_LIMIT == 100
    assert deleted == ids and failures == []


def test_batch_delete_reports_failures_per_id(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    gone, kept, fine = ImageId(digest=sha256_digest("gone")), ImageId(tag="child"), ImageId(tag="stale")
    stub.add_response(
        "batch_delete_image",
        {
            "imageIds": [{"imageDigest": digest(9), "imageTag": "stale"}],
            "failures": [
                {
                    "imageId": {"imageDigest": str(gone.digest)},
                    "failureCode": "ImageNotFound",
                    "failureReason": "x",
                },
                {
                    "imageId": {"imageTag": "child"},
                    "failureCode": "ImageReferencedByManifestList",
                    "failureReason": "referenced",
                },
            ],
        },
        {
            "registryId": ACCOUNT,
            "repositoryName": "acme/r",
            "imageIds": [{"imageDigest": str(gone.digest)}, {"imageTag": "child"}, {"imageTag": "stale"}],
        },
    )
    deleted, failures = make(client).batch_delete("acme/r", [gone, kept, fine])
    assert deleted == [fine]
    assert [(f.image, f.code) for f in failures] == [
        (gone, "ImageNotFound"),
        (kept, "ImageReferencedByManifestList"),
    ]


def test_throttling_is_retried_with_backoff(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    one = ImageId(tag="stale")
    request = {"registryId": ACCOUNT, "repositoryName": "acme/r", "imageIds": [{"imageTag": "stale"}]}
    for _ in range(2):
        stub.add_client_error(
            "batch_delete_image", "ThrottlingException", "Rate exceeded", 400, expected_params=request
        )
    stub.add_response("batch_delete_image", {"imageIds": [{"imageTag": "stale"}], "failures": []}, request)
    sleeps: list[float] = []
    deleted, _ = make(client, sleeps).batch_delete("acme/r", [one])
    assert deleted == [one]
    # attempt 1 waits 0.5 s × [0.5, 1], attempt 2 waits 1 s × [0.5, 1]: growing, capped.
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_throttling_that_outlasts_the_attempts_is_rate_limited(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    for _ in range(3):
        stub.add_client_error("describe_repositories", "ThrottlingException", "Rate exceeded", 400)
    with pytest.raises(RateLimited) as caught:
        make(client, attempts=3).repository("acme/r")
    assert caught.value.exit_code == 6 and "ThrottlingException" in caught.value.message


def test_access_denied_is_an_auth_error(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    stub.add_client_error("describe_repositories", "AccessDeniedException", "not authorized", 400)
    with pytest.raises(Denied) as caught:
        make(client).repository("acme/r")
    assert caught.value.exit_code == 4


def test_registry_credentials_decode_the_token_and_never_show_it(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    token = base64.b64encode(b"AWS:s3cret-password").decode()
    stub.add_response(
        "get_authorization_token",
        {"authorizationData": [{"authorizationToken": token, "proxyEndpoint": "https://x"}]},
        {"registryIds": [ACCOUNT]},
    )
    found = make(client).registry_credentials()
    assert (found.username, found.password) == ("AWS", "s3cret-password")
    assert "s3cret" not in repr(found) and "GetAuthorizationToken" in found.source


def test_a_registry_id_must_be_an_account_id() -> None:
    with pytest.raises(UsageError):
        EcrClient("not-an-account", client=object())


def test_the_core_never_imports_boto3() -> None:
    code = (
        "import sys, inspector\n"
        "from inspector.cli.entry import run\n"
        "run(['--version']); run(['tags', '--help']); run(['gc', '--help'])\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_ecr_backend_without_boto3_is_a_one_line_usage_error(tmp_path: Any) -> None:
    # A `boto3` that cannot be imported, first on the path, stands for a machine without the extra.
    (tmp_path / "boto3.py").write_text("raise ImportError('No module named boto3')\n")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "from inspector.cli.entry import run\n"
        "sys.exit(run(['gc', '123456789012.dkr.ecr.eu-west-1.amazonaws.com/app-cache', '-t', '{branch}-c', "
        "'--max-age', '1d']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "the ECR backend needs boto3" in done.stderr and "cacheinspect[aws]" in done.stderr
