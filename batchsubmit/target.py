"""The seam between the engine and an API: what submitting needs of a server, whatever it speaks.

The engine, the reconciler and the run talk to a :class:`Target` only: create a point, list the
points a job has on the server (:class:`PointListing`, complete or an error); ``batchsubmit stop``
and ``delete`` (:mod:`batchsubmit.stopping`) stop or delete an object the ledger recorded.
The v1 API (versions of one training job) is one implementation (:mod:`batchsubmit.v1`), the v2
API (a training job per point, :mod:`batchsubmit.v2`) another; ``job_id`` is the v1 job a call is
about (v2 ignores it: its points belong to no job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from batchsubmit.sweep import Point

__all__ = ["Created", "PointListing", "Target"]


@dataclass(frozen=True, slots=True)
class Created:
    """A point's object on the server: the id and name its ``succeeded`` line records, under
    the field names of its API (v1 ``version_id``/``version_name``, v2 ``training_job_id``/
    ``job_name``)."""

    id: int | str
    name: str
    id_field: str = "version_id"
    name_field: str = "version_name"

    def ledger_fields(self) -> dict[str, int | str]:
        return {self.id_field: self.id, self.name_field: self.name}


class PointListing(Protocol):
    """Everything one job had on the server when a listing began."""

    @property
    def started_at(self) -> float:
        """When the listing began (the reconciler's clock)."""
        ...

    @property
    def latest_id(self) -> int | None:
        """The job's newest object, ours or not (``base.from_version: latest``)."""
        ...

    def find(self, point: Point) -> Created | None:
        """The point's object, if listed; IdentityConflictError when another object holds the
        point's identity (it is not the point's, and may not be adopted)."""
        ...


class Target(Protocol):
    """One API of one project on one endpoint."""

    async def create(self, job_id: int, point: Point) -> Created:
        """Create the point's object. Not idempotent: OutcomeUnknownError means it may exist."""
        ...

    async def listing(self, job_id: int, started_at: float) -> PointListing:
        """A complete listing of the job, begun at ``started_at``; an error if incomplete."""
        ...

    async def stop(self, job_id: int, id: int | str) -> None:
        """Stop the object ``id`` of the job (its training is killed); an APIError if refused."""
        ...

    async def delete(self, job_id: int, id: int | str) -> None:
        """Delete the object ``id`` of the job for good; an APIError if refused."""
        ...
