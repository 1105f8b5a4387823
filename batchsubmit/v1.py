"""The v1 API as a :class:`~batchsubmit.target.Target`: versions of one training job.

A point's identity on the server is its rendered ``train_url``, normalised, confirmed by its
``parameter`` list compared by value (:mod:`batchsubmit.identity`); a version on the point's
train_url whose parameters disagree is an :class:`IdentityConflictError`, never adopted. A
listing is a complete walk of the job's versions (:mod:`batchsubmit.paging`) or an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batchsubmit.client import ModelArtsClient
from batchsubmit.errors import IdentityConflictError
from batchsubmit.identity import disagreements, normalise_train_url
from batchsubmit.models import Version
from batchsubmit.sweep import Point
from batchsubmit.target import Created

__all__ = ["Identity", "Listing", "V1Target", "identity"]

Identity = tuple[str, tuple[tuple[str, str], ...]]


def identity(train_url: str, parameter: Sequence[tuple[str, str]]) -> Identity:
    """The identity of a point (or a version) on the server."""
    return train_url, tuple(parameter)


@dataclass(frozen=True, slots=True)
class Listing:
    """Every version of the job at one moment, indexed by normalised train_url."""

    started_at: float
    by_train_url: dict[str, list[Version]]
    latest_id: int | None = None  # the newest version of the job, ours or not

    @classmethod
    def build(cls, started_at: float, versions: Sequence[Version]) -> Listing:
        index: dict[str, list[Version]] = {}
        for version in versions:
            if version.train_url is not None:
                index.setdefault(normalise_train_url(version.train_url), []).append(version)
        for found in index.values():
            found.sort(key=_age)
        latest = max(versions, key=_age, default=None)  # by time: the listing's order is no promise
        return cls(started_at, index, None if latest is None else latest.version_id)

    def find(self, point: Point) -> Created | None:
        """The point's version, if listed (:meth:`find_version`)."""
        version = self.find_version((point.train_url, point.parameter))
        return None if version is None else Created(version.version_id, version.version_name)

    def find_version(self, who: Identity) -> Version | None:
        """The oldest version that is this point's, if any.

        Raises IdentityConflictError when versions hold the point's train_url but none of them
        has its parameters."""
        train_url, parameter = who
        found = self.by_train_url.get(normalise_train_url(train_url))
        if not found:
            return None
        differences = []
        for version in found:
            differs = disagreements(parameter, version.parameter_pairs)
            if not differs:
                return version
            differences.append(
                f"version {version.version_id} ({version.version_name or 'unnamed'}): "
                + "; ".join(differs)
            )
        raise IdentityConflictError(
            f"train_url {train_url!r} is already taken by a version with other parameters, "
            f"so it is not this point's and nothing was created for it: {' | '.join(differences)}"
            "; give the point a train_url of its own, or remove that version if it is a leftover"
        )


def _age(version: Version) -> tuple[int, int]:
    """Oldest first: by create time, then by id (U5: no listing order is documented)."""
    return version.create_time or 0, version.version_id


class V1Target:
    """Create versions of training jobs, list, stop and delete them, through one client."""

    def __init__(self, client: ModelArtsClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"V1Target({self.client!r})"

    async def create(self, job_id: int, point: Point) -> Created:
        reply = await self.client.create_version(job_id, point.body)
        return Created(reply.version_id, reply.version_name)

    async def listing(self, job_id: int, started_at: float) -> Listing:
        return Listing.build(started_at, await self.versions(job_id))

    async def stop(self, job_id: int, id: int | str) -> None:
        await self.client.stop_version(job_id, int(id))

    async def delete(self, job_id: int, id: int | str) -> None:
        await self.client.delete_version(job_id, int(id))

    async def versions(self, job_id: int) -> list[Version]:
        """Every version of the job (a complete walk, else IncompleteListingError)."""
        return [version async for version in self.client.list_versions(job_id)]
