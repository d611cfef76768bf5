"""The Artifact Registry ``packages.list`` page parser and the location a host names, without a server.

Shapes from Google's REST reference ("Method: projects.locations.repositories.packages.list"): a body
``{"packages": [{"name": "projects/P/locations/L/repositories/R/packages/PACKAGE", …}], "nextPageToken"}``,
the package id of a nested image path URL-encoded (``a%2Fb``).
"""

from __future__ import annotations

import pytest

from inspector.errors import InvalidContent
from inspector.registry.google import location_of, parse_packages_page

PARENT = "projects/proj/locations/us/repositories/caches"


def test_a_page_gives_each_image_path_decoded_and_the_next_token() -> None:
    raw = (
        b'{"packages": [{"name": "' + PARENT.encode() + b'/packages/app-cache", "createTime": "x"},'
        b' {"name": "' + PARENT.encode() + b'/packages/team%2Fapi-cache"}], "nextPageToken": "abc"}'
    )
    # By hand: the id after ".../packages/" URL-decoded: team%2Fapi-cache is the image team/api-cache.
    assert parse_packages_page(raw, PARENT, "list") == (["app-cache", "team/api-cache"], "abc")


def test_the_last_page_has_no_token_and_an_empty_repository_no_packages() -> None:
    assert parse_packages_page(b"{}", PARENT, "list") == ([], "")
    assert parse_packages_page(b'{"packages": []}', PARENT, "list") == ([], "")


@pytest.mark.parametrize(
    "name",
    [
        "projects/other/locations/us/repositories/caches/packages/app",  # another repository's package
        PARENT + "/packages/",  # no id
        PARENT + "/packages/a/b",  # a raw "/" in an id: not the API's encoding
    ],
)
def test_a_package_outside_the_repository_listed_is_refused(name: str) -> None:
    raw = b'{"packages": [{"name": "' + name.encode() + b'"}]}'
    with pytest.raises(InvalidContent, match="is not under"):
        parse_packages_page(raw, PARENT, "list")


def test_the_location_is_the_hosts_or_gclouds_setting() -> None:
    assert location_of("us-docker.pkg.dev", {}) == "us"
    assert (
        location_of("europe-west1-docker.pkg.dev", {"CLOUDSDK_ARTIFACTS_LOCATION": "asia"}) == "europe-west1"
    )
    assert location_of("127.0.0.1:5000", {"CLOUDSDK_ARTIFACTS_LOCATION": "us"}) == "us"
    assert location_of("127.0.0.1:5000", {}) is None
