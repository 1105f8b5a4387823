"""The walk through a job's versions misses nothing, whatever page size the server serves (U4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest

from batchsubmit.errors import Disposition, IncompleteListingError
from batchsubmit.models import VersionList
from batchsubmit.paging import walk_versions

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class PagedServer:
    """Versions newest first, served at most ``cap`` a page; offsets per ``reading``."""

    def __init__(
        self, n: int, *, cap: int | None = None,
        reading: Literal["served", "requested"] = "served", count: bool = True,
    ) -> None:
        self.ids = list(range(n, 0, -1))
        self.cap, self.reading, self.count = cap, reading, count
        self.calls: list[tuple[int, int]] = []
        self.before_page: Callable[[int], None] = lambda page: None

    async def fetch(self, page: int, per_page: int) -> VersionList:
        self.calls.append((page, per_page))
        self.before_page(page)
        served = min(per_page, self.cap or per_page)
        start = (page - 1) * (served if self.reading == "served" else per_page)
        body: dict[str, Any] = {"versions": [{"version_id": v} for v in
                                             self.ids[start:start + served]]}
        if self.count:
            body["version_count"] = len(self.ids)
        return VersionList.model_validate(body)


async def walk(server: PagedServer, per_page: int = 1000) -> list[int]:
    return [v.version_id async for v in walk_versions(server.fetch, per_page=per_page)]


@pytest.mark.parametrize("reading", ["served", "requested"])
@pytest.mark.parametrize("cap", [None, 1, 7, 50])
@pytest.mark.parametrize("n", [0, 1, 49, 50, 51, 120])
@pytest.mark.parametrize("count", [True, False])
async def test_every_version_is_seen_once_under_either_offset_reading(
    reading: Literal["served", "requested"], cap: int | None, n: int, count: bool
) -> None:
    """A cap below per_page, read either way, with or without version_count: all, once each."""
    server = PagedServer(n, cap=cap, reading=reading, count=count)
    assert sorted(await walk(server)) == list(range(1, n + 1))


async def test_a_short_first_page_is_not_the_end() -> None:
    """50 of 120 on page 1 (a cap of 50): the walk goes on at 50 a page, not stopping there."""
    server = PagedServer(120, cap=50, reading="requested")
    assert len(await walk(server)) == 120
    assert server.calls == [(1, 1000), (2, 50), (3, 50)]


async def test_a_version_created_mid_walk_repeats_nothing_and_loses_nothing() -> None:
    """A create between two pages pushes the rest down one place; each old version once."""
    server = PagedServer(30)

    def create(page: int) -> None:
        if page == 2:
            server.ids.insert(0, 31)

    server.before_page = create
    seen = await walk(server, per_page=10)
    assert len(seen) == len(set(seen))
    assert set(range(1, 31)) <= set(seen)


async def test_a_server_that_ignores_page_ends_in_an_incomplete_listing() -> None:
    """The same full page again and again proves nothing: IncompleteListingError, retryable."""

    async def same(page: int, per_page: int) -> VersionList:
        return VersionList.model_validate({"versions": [{"version_id": i} for i in (3, 2, 1)],
                                           "version_count": 9})

    with pytest.raises(IncompleteListingError) as caught:
        [v async for v in walk_versions(same, per_page=3)]
    assert caught.value.disposition is Disposition.RETRY
    assert "3 of 9" in str(caught.value)
