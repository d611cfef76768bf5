"""Reading lists back: tags/list with its ``n`` and ``Link`` paging, the catalog, the referrers API."""

from __future__ import annotations

import json

from inspector.oci import mediatypes
from inspector.probe.classify import Answer
from inspector.probe.requests import catalog_page, referrers, tags_page
from inspector.probe.session import ProbeSession, Result, count

__all__ = ["catalog", "referrers_api", "tags_link", "tags_list", "tags_n"]


def tags_list(s: ProbeSession) -> Result:
    pages = s.read_all_tags()
    tags = s.all_tags
    expected = {t for t in s.created_tags if t not in s.gone}
    missing = sorted(expected - set(tags))
    if missing:
        return Result("unsupported", f"tags/list omits tags the probe pushed: {', '.join(missing)}")
    mine = f"; the probe's {len(expected)} tags are listed" if expected else ""
    return Result(
        "supported",
        f"{count(len(tags), 'tag')} in {count(pages, 'page')}{mine}",
        observed={"tags": len(tags), "pages": pages},
    )


def tags_n(s: ProbeSession) -> Result:
    total = len(s.all_tags)
    if total < 2:
        return Result(
            "skipped", f"{total} tag{'s' if total != 1 else ''} in the repository: n=1 cannot be judged"
        )
    page, following = tags_page(s.client, s.repo, n=1)
    s.n_honoured = len(page) <= 1
    s.first_link = following
    observed = {"asked": 1, "got": len(page), "link": following is not None}
    if s.n_honoured:
        return Result("supported", f"n=1 honoured: 1 of {total} tags on the first page", observed=observed)
    return Result(
        "unsupported",
        f"n=1 ignored: {len(page)} tags in one response, {'with' if following else 'no'} Link",
        observed=observed,
    )


def tags_link(s: ProbeSession) -> Result:
    if s.n_honoured is None:
        return Result("skipped", "n was not checked")
    if s.first_link is None:
        if not s.n_honoured:
            return Result("skipped", "n is ignored and no Link is sent: every tag comes in one response")
        return Result(
            "unsupported",
            f"a page cut to n=1 (of {len(s.all_tags)} tags) came without a Link header: clients that "
            "follow Link miss tags",
        )
    seen: list[str] = []
    url: str | None = s.first_link
    pages = 0
    while url and pages < 3:
        page, url = tags_page(s.client, s.repo, url=url)
        pages += 1
        if not page:
            return Result("unsupported", f"Link page {pages} is empty")
        if set(page) & set(seen):
            return Result("unsupported", f"Link page {pages} repeats tags of earlier pages")
        seen.extend(page)
    return Result(
        "supported",
        f"followed Link for {pages} more page{'s' if pages != 1 else ''} ({len(seen)} further tags)",
        observed={"pagesFollowed": pages},
    )


def catalog(s: ProbeSession) -> Result:
    found, link = catalog_page(s.client, s.repo.registry, 1)
    return Result(
        "supported",
        f"_catalog?n=1 answered with {found} repositor{'y' if found == 1 else 'ies'}"
        f"{', with a Link to the next page' if link else ', no Link'}",
        observed={"link": link},
    )


def referrers_api(s: ProbeSession) -> Result:
    subject = s.subject()
    if subject is None:
        return Result("skipped", "no manifest to ask about (nothing pushed, no existing cache)")
    content_type, body = referrers(s.client, s.repo, subject)
    kind = mediatypes.base(content_type)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    shaped = (
        isinstance(doc, dict) and doc.get("schemaVersion") == 2 and isinstance(doc.get("manifests"), list)
    )
    answer = Answer("GET", f"/v2/{s.repo.path}/referrers/{subject}", 200)
    if kind == mediatypes.OCI_INDEX and shaped:
        assert isinstance(doc, dict)
        return Result("supported", f"answers an OCI index ({len(doc['manifests'])} referrers)", answer)
    what = f"Content-Type {kind or 'none'}" + ("" if shaped else ", body is not an index")
    return Result(
        "unsupported",
        f"200 without a referrers index ({what}): a false 200, the API is not there",
        answer,
        hint="some registries answer 200 on /referrers/ without supporting it [P2]; use the tag schema",
    )
