"""The one walk through a job's versions, page by page, that cannot end early (U4, U5).

A server may serve fewer versions per page than ``per_page`` asked for (a cap of its own), and
the documentation does not say whether the next page's offset then follows the size asked for
or the size served. So a page shorter than asked proves nothing; the walk goes on:

- until a page comes back empty, or until ``version_count`` (the latest page's) versions were
  seen: then it is complete;
- after a short page, at the size the server really served (its offsets agree with either
  reading from then on), from the position that page ended at;
- de-duplicating by ``version_id`` (a version created mid-walk pushes the rest down a place).

Pages that bring nothing new, or more pages than the API counts, end the walk with
:class:`~batchsubmit.errors.IncompleteListingError`: never with a listing that merely looks
complete. The fetch function is the caller's, so the client and the watch share this walk while
each paces and retries its own requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from batchsubmit.errors import IncompleteListingError
from batchsubmit.models import Version, VersionList

__all__ = ["MAX_PAGE", "MAX_PER_PAGE", "FetchPage", "walk_versions"]

MAX_PER_PAGE = 1000  # list versions: per_page 1..1000
MAX_PAGE = 65535  # list versions: page 1..65535
BARREN_PAGES = 3  # full pages in a row with nothing new: the server is not paging

FetchPage = Callable[[int, int], Awaitable[VersionList]]  # (page, per_page) -> that page


async def walk_versions(
    fetch: FetchPage, *, per_page: int = MAX_PER_PAGE, what: str = "the versions"
) -> AsyncIterator[Version]:
    """Every version ``fetch`` can page through, each once; see the module docstring.

    Raises IncompleteListingError (naming ``what``) when the walk cannot be finished."""
    size = max(1, min(per_page, MAX_PER_PAGE))
    seen: set[int] = set()
    page = 1
    barren = 0
    while True:
        listing = await fetch(page, size)
        versions = listing.versions
        if not versions:
            return
        fresh = 0
        for version in versions:
            if version.version_id not in seen:
                seen.add(version.version_id)
                fresh += 1
                yield version
        count = listing.version_count
        if count is not None and len(seen) >= count:
            return
        barren = 0 if fresh else barren + 1
        if barren >= BARREN_PAGES:
            raise IncompleteListingError(
                f"listing {what}: {barren} pages in a row brought no new version after "
                f"{len(seen)} of {count if count is not None else 'an unknown number'}; "
                "the server does not seem to page, so absence proves nothing"
            )
        ended_at = (page - 1) * size + len(versions)
        if len(versions) < size and ended_at % len(versions) == 0:
            size = len(versions)  # the size the server serves: continue at its offsets
            page = ended_at // size + 1
        else:
            page += 1
        if page > MAX_PAGE:
            raise IncompleteListingError(
                f"listing {what}: past the API's last page ({MAX_PAGE}) with {len(seen)} of "
                f"{count if count is not None else 'an unknown number'} versions seen"
            )
