"""The v2 API as a :class:`~batchsubmit.target.Target`: one training job per point.

A point's identity on the server is its job name (``metadata.name``, deterministic, unique per
point: preflight), confirmed by its parameters (compared by value) and its train_url output
(normalised) where the server echoes them (:mod:`batchsubmit.identity`). v2 has no idempotency
token, but refuses a duplicate name (400 ``ModelArts.2751``, :class:`NameTakenError`); the engine
turns that into an adoption or a conflict.

A listing is a complete search of the jobs whose names contain the sweep's name prefix, walked by
:func:`walk_jobs` so that neither reading of ``offset`` (page index or record offset: the sources
disagree, ``v2-training-jobs.md`` section 4) misses a job, and kept to exact name matches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from batchsubmit.client import ModelArtsClient
from batchsubmit.errors import (
    BatchSubmitError,
    Disposition,
    IdentityConflictError,
    IncompleteListingError,
    ThrottledError,
)
from batchsubmit.identity import disagreements, normalise_train_url
from batchsubmit.models_v2 import JobSearchPage, TrainingJob
from batchsubmit.retry import Backoff
from batchsubmit.sweep import Point
from batchsubmit.sweep.v2body import job_name
from batchsubmit.target import Created

__all__ = ["SEARCH_LIMIT", "V2Listing", "V2Target", "job_name", "walk_jobs"]

SEARCH_LIMIT = 50  # search: limit is 1..50
PAGE_ATTEMPTS = 4  # tries of one search page before its walk fails
MAX_PAGES = 10_000  # a walk longer than this is not converging
BARREN_PAGES = 3  # pages in a row with nothing new: the server is not paging

FetchOffset = Callable[[int], Awaitable[JobSearchPage]]  # offset -> that page


def created(job: TrainingJob) -> Created:
    return Created(job.id, job.name, id_field="training_job_id", name_field="job_name")


async def walk_jobs(fetch: FetchOffset, *, what: str = "the training jobs") -> list[TrainingJob]:
    """Every job a search pages through, each once, in the order served.

    Page 1 tells the two readings of ``offset`` apart: a record-offset server starts it at page
    0's second job, a page-index server after page 0's last. The walk then advances by one page
    (page index) or by the jobs seen (record offset) until a page comes back empty; a short page
    proves nothing (a server may serve fewer than asked). Pages that bring nothing new, or a walk
    that does not end, raise IncompleteListingError: absence is never concluded from them.

    A job deleted mid-walk shifts the later ones back by one under either reading, so one of
    them can be missed at a page boundary: the reconciler concludes "absent" only from two
    walks a settle interval apart, and the resend's 2751 catches the rest."""
    seen: dict[str, TrainingJob] = {}

    def add(items: Sequence[TrainingJob]) -> int:
        fresh = 0
        for job in items:
            if job.id not in seen:
                seen[job.id] = job
                fresh += 1
        return fresh

    first = (await fetch(0)).items
    if not first:
        return []
    add(first)
    record_offsets: bool | None = None
    offset, barren = 1, 0
    for _ in range(MAX_PAGES):
        items = (await fetch(offset)).items
        if not items:
            return list(seen.values())
        if record_offsets is None:
            record_offsets = len(first) >= 2 and items[0].id == first[1].id
            fresh = add(items)
        else:
            fresh = add(items)
            barren = 0 if fresh else barren + 1
            if barren >= BARREN_PAGES:
                raise IncompleteListingError(
                    f"searching {what}: {barren} pages in a row brought no new job after "
                    f"{len(seen)}; the server does not seem to page, so absence proves nothing"
                )
        offset = len(seen) if record_offsets else offset + 1
    raise IncompleteListingError(
        f"searching {what}: no end after {MAX_PAGES} pages ({len(seen)} jobs seen)"
    )


@dataclass(frozen=True, slots=True)
class V2Listing:
    """The jobs a search found at one moment, by exact name."""

    started_at: float
    by_name: Mapping[str, Sequence[TrainingJob]]
    latest_id: None = None  # v2 jobs build on no version
    by_folded: Mapping[str, Sequence[TrainingJob]] = field(default_factory=dict)  # casefold

    @classmethod
    def build(cls, started_at: float, jobs: Sequence[TrainingJob]) -> V2Listing:
        index: dict[str, list[TrainingJob]] = {}
        folded: dict[str, list[TrainingJob]] = {}
        for job in jobs:
            index.setdefault(job.name, []).append(job)
            folded.setdefault(job.name.casefold(), []).append(job)
        return cls(started_at, index, by_folded=folded)

    def find(self, point: Point) -> Created | None:
        """The point's job, if listed; IdentityConflictError when the job of its name is not
        the point's (other parameters or outputs), or the name is held twice."""
        name = job_name(point)
        found = self.by_name.get(name)
        if not found:
            others = self.by_folded.get(name.casefold())
            if others:  # a server comparing names without case takes it for this point's
                raise IdentityConflictError(
                    f"the training job named {others[0].name!r} ({others[0].id}) differs from "
                    f"this point's name {name!r} only in case: a server that compares names "
                    "without case refuses the point's job for it, and it is not the point's; "
                    "rename the point's job (metadata.name) or remove that job"
                )
            return None
        if len(found) > 1:
            ids = ", ".join(job.id for job in found)
            raise IdentityConflictError(
                f"{len(found)} training jobs are named {name!r} ({ids}): names should be "
                "unique, so none is adopted as this point's; remove the extra ones"
            )
        job = found[0]
        differs = _differences(point, job)
        if differs:
            raise IdentityConflictError(
                f"the training job named {name!r} ({job.id}) is not this point's: "
                f"{'; '.join(differs)}; nothing was created for the point. Rename the point's "
                "job (metadata.name) or remove that job if it is a leftover"
            )
        return created(job)


def _differences(point: Point, job: TrainingJob) -> list[str]:
    """What the job's echo contradicts of the point: parameters by value (each of the point's
    must be echoed, when the echo lists parameters at all), outputs normalised (those the echo
    names); an echo without parameters or outputs is not held against the job."""
    out: list[str] = []
    if job.algorithm.parameters is not None:
        out += disagreements(point.parameter, job.parameter_pairs)
    sent = {
        item["name"]: item["remote"]["obs"]["obs_url"]
        for item in point.body["algorithm"].get("outputs") or ()
    }
    for name, url in job.output_urls.items():
        if name in sent and normalise_train_url(url) != normalise_train_url(sent[name]):
            out.append(f"output {name} is {url!r} there, {sent[name]!r} in this point")
    return out


class V2Target:
    """Create, search, terminate and delete v2 training jobs through one client."""

    def __init__(
        self, client: ModelArtsClient, *, name_prefix: str = "", workspace_id: str | None = None
    ) -> None:
        self.client = client
        self.name_prefix = name_prefix  # every point's name starts with it: the search filter
        self.workspace_id = workspace_id
        self._backoff = Backoff()

    def __repr__(self) -> str:
        return f"V2Target({self.client!r}, name_prefix={self.name_prefix!r})"

    async def create(self, job_id: int, point: Point) -> Created:
        return created(await self.client.create_training_job(point.body))

    async def listing(self, job_id: int, started_at: float) -> V2Listing:
        return V2Listing.build(started_at, await self.jobs())

    async def jobs(self) -> list[TrainingJob]:
        """Every job whose name contains the prefix (a complete walk, else an error)."""
        return await walk_jobs(self.page, what=f"jobs named like {self.name_prefix!r}")

    async def page(self, offset: int) -> JobSearchPage:
        """One page of the search of the sweep's jobs (what :func:`walk_jobs` walks). A page
        that fails (a 5xx, a timeout: a search is a read) is asked again here, up to
        PAGE_ATTEMPTS times, rather than failing the whole walk: a long walk under occasional
        5xx would otherwise seldom finish. A throttled page is the pacing's to retry (its
        limiter must learn of it), and a refused credential ends everything: both propagate."""
        attempt = 1
        while True:
            try:
                return await self.client.search_training_jobs(self._query(offset))
            except BatchSubmitError as exc:
                if (isinstance(exc, ThrottledError) or exc.disposition is Disposition.ABORT
                        or attempt >= PAGE_ATTEMPTS):
                    raise
                await anyio.sleep(self._backoff.delay(attempt, exc))
                attempt += 1

    def _query(self, offset: int) -> dict[str, Any]:
        query: dict[str, Any] = {
            "offset": offset, "limit": SEARCH_LIMIT, "sort_by": "create_time", "order": "asc",
        }  # fmt: skip
        if self.name_prefix:
            query["filters"] = [{"key": "name", "operator": "like", "value": [self.name_prefix]}]
        if self.workspace_id is not None:
            query["workspace_id"] = self.workspace_id
        return query

    async def stop(self, job_id: int, id: int | str) -> None:
        await self.client.terminate_training_job(str(id))

    async def delete(self, job_id: int, id: int | str) -> None:
        await self.client.delete_training_job(str(id))
