"""Test doubles for code that uses batchsubmit, as ``structlog.testing`` is for structlog.

:class:`Emulator` is the local ModelArts emulator on real loopback sockets, in a thread of its own
(so it serves while the test's own code blocks, or runs an event loop of its own), with the
ground truth a test checks against::

    import batchsubmit as bs
    from batchsubmit.testing import Emulator

    def test_my_sweep_creates_each_point_once():
        with Emulator(rate=40, latency_ms=5, faults={"ambiguous_share": 0.1}) as emu:
            result = bs.submit_sync("sweep.yaml", endpoint=emu.url, credentials=emu.credentials,
                                    ledger=tmp_path / "l.jsonl", settle=0.5)
            created = {v["version_id"] for v in emu.versions(10)} - emu.seeded_version_ids
            assert {p.version_id for p in result.succeeded.values()} == created

Every setting of the emulator is a keyword (``EmulatorConfig``'s fields: ``rate``, ``burst``,
``gateway``, ``latency_ms``, ``list_lag``, ``echo_numbers``, ...); ``faults`` takes them as a
mapping too, for tables of fault mixes. ``set_faults`` changes them while it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from batchsubmit.auth import NoCredentials

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from batchsubmit.emulator import Emulator as _Server
    from batchsubmit.emulator import EmulatorConfig

__all__ = ["Emulator"]

T = TypeVar("T")


class Emulator:
    """A running ModelArts v1 emulator for a test: ``with Emulator(...) as emu: emu.url``."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        faults: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        from batchsubmit.emulator import EmulatorConfig

        base = config.model_dump() if config is not None else {}
        self.config: EmulatorConfig = EmulatorConfig.model_validate(
            {**base, **settings, **(faults or {})}
        )
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._server_cm: AbstractContextManager[_Server] | None = None
        self._server: _Server | None = None

    def __repr__(self) -> str:
        return f"<testing.Emulator {self._server!r}>"

    def __enter__(self) -> Self:
        from anyio.from_thread import start_blocking_portal

        from batchsubmit.emulator import run_emulator

        self._portal_cm = start_blocking_portal(backend="asyncio")
        portal = self._portal = self._portal_cm.__enter__()
        try:
            self._server_cm = portal.wrap_async_context_manager(run_emulator(self.config))
            self._server = self._server_cm.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._server_cm is not None:
                self._server_cm.__exit__(exc_type, exc, tb)
        finally:
            if self._portal_cm is not None:
                self._portal_cm.__exit__(None, None, None)
            self._server = self._server_cm = self._portal_cm = self._portal = None

    @property
    def _serving(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the emulator is not running: use `with Emulator(...) as emu:`")
        return self._server

    def _call(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the emulator's own thread, between two of its requests."""
        if self._portal is None:
            raise RuntimeError("the emulator is not running: use `with Emulator(...) as emu:`")
        return self._portal.call(func, *args)

    @property
    def url(self) -> str:
        """Where it listens, e.g. ``http://127.0.0.1:40123``: pass it as ``endpoint``."""
        return self._serving.url

    @property
    def credentials(self) -> NoCredentials:
        """Credentials for its project (it checks none unless ``auth`` says so)."""
        return NoCredentials(project_id=self.config.project_id)

    @property
    def seeded_version_ids(self) -> set[int]:
        """The versions the jobs start with (``config.jobs``), not created by a test."""
        return set(self.config.jobs.values())

    def versions(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """Ground truth: every version ever created (hidden by lag or deleted too), by id."""
        return self._call(self._serving.versions, job_id)

    def v2_jobs(self) -> list[dict[str, Any]]:
        """Ground truth of the v2 API: every training job ever created, oldest first."""
        return self._call(self._serving.v2_jobs)

    @property
    def counters(self) -> dict[str, int]:
        """Requests by kind: ``creates`` (versions really created), ``ambiguous``, ..."""
        return self._call(lambda: self._serving.counters)

    def set_faults(self, **changes: Any) -> EmulatorConfig:
        """Change its runtime settings (faults, throttling, lag, drift) while it serves."""
        self.config = self._call(lambda: self._serving.set_faults(**changes))
        return self.config
