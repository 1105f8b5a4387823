"""Writing a ledger: the async group-commit appender (one write + fsync per batch)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.lowlevel
import anyio.to_thread

from batchsubmit.errors import LedgerError
from batchsubmit.events import get_logger
from batchsubmit.ledger.fold import _os_error, _reason
from batchsubmit.ledger.records import check_record, encode

log = get_logger("batchsubmit.ledger")


class _Batch:
    """Lines handed to ``write`` that will go out in one write + fsync."""

    __slots__ = ("chunks", "done", "finished", "has_writer")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.has_writer = False  # one of the writers in it writes it; the others wait
        self.done = False  # the write + fsync was attempted (it failed if the writer is broken)
        self.finished = anyio.Event()  # set when done


class LedgerWriter:
    """Appends records durably: ``write`` returns once its line is written and fsynced.

    ``async with LedgerWriter(path, expected_sweep="lr-sweep") as ledger: await ledger.write(r)``

    Group commit: concurrent ``write`` calls that arrive while a batch is being synced form the
    next batch, which the first of them writes, once the batch in flight is done, with one
    ``os.write`` and one fsync in a worker thread, for all of them; the others sleep until then.
    The file is locked (``flock``) against a second writer, created with mode 0600, and refused
    if it belongs to another sweep. After any OSError the writer is broken for good: every
    waiter of that batch and every later ``write`` raise LedgerError.
    ``sync`` makes each batch durable (``os.fsync``); tests wrap it to hold a batch in flight.
    ``keep_empty=False`` removes the file again at close if this writer created it and wrote
    nothing (a run refused before its first record leaves no 0-byte ledger behind).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        expected_sweep: str | None = None,
        sync: Callable[[int], None] = os.fsync,
        keep_empty: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        self.expected_sweep = expected_sweep
        self._keep_empty = keep_empty
        self._sync = sync
        self._fd: int | None = None
        self._closed = False
        self._separator = b""  # b"\n" when the file ends with a torn line
        self._current = _Batch()
        self._in_flight: _Batch | None = None
        self._thread = anyio.CapacityLimiter(1)  # its own: never queued behind others' threads
        self._broken: str | None = None  # why the writer is broken: the reason every write gets
        self._cause: BaseException | None = None
        self.records_written = 0
        self._created = False  # this writer made the file (removed again if nothing is written)
        self.batches = 0
        self.fsyncs = 0

    # lifecycle

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> Self:
        """Open (or create) the ledger for appending; LedgerError if it cannot be used."""
        if self._fd is not None or self._closed:
            raise RuntimeError("a LedgerWriter is opened once: create a new one")
        with anyio.CancelScope(shield=True):  # an fd opened must be kept, to be closed
            self._fd = await anyio.to_thread.run_sync(self._open_file, limiter=self._thread)
        return self

    def _open_file(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            try:
                fd, created = os.open(self.path, flags | os.O_EXCL, 0o600), True
            except FileExistsError:
                fd, created = os.open(self.path, flags, 0o600), False
        except OSError as exc:
            raise _os_error("open the ledger for appending", exc, self.path) from exc
        try:
            self._prepare(fd, created)
        except BaseException:
            os.close(fd)
            if created and not self._keep_empty:
                _unlink_empty(self.path)
            raise
        self._created = created
        return fd

    def _prepare(self, fd: int, created: bool) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LedgerError(
                "another batchsubmit process is writing this ledger; wait for it to finish "
                "(or stop it) before running the same sweep again",
                path=self.path,
            ) from None
        except OSError:  # a file system without locks (ENOLCK, EOPNOTSUPP): go on unlocked
            log.warning("batchsubmit.ledger.unlocked", path=self.path)
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode):
                if info.st_mode & 0o077:
                    log.warning(
                        "batchsubmit.ledger.mode_too_wide",
                        path=self.path, mode=oct(stat.S_IMODE(info.st_mode)),
                        hint=f"chmod 600 {self.path}",
                    )  # fmt: skip
                if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
                    self._separator = b"\n"
                    log.warning("batchsubmit.ledger.torn_line_closed", path=self.path)
                if info.st_size and self.expected_sweep is not None:
                    self._check_sweep(self.expected_sweep)
            if created:  # make the new directory entry durable too
                dir_fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise _os_error("prepare the ledger", exc, self.path) from exc

    def _check_sweep(self, expected: str) -> None:
        with open(self.path, "rb") as file:
            for line in file:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("event") == "run_started":
                    if record.get("sweep") != expected:
                        raise LedgerError(
                            f"another sweep's ledger: it records sweep {record.get('sweep')!r}, "
                            f"not {expected!r}; pass a --ledger of its own to each sweep",
                            path=self.path,
                        )
                    return

    async def aclose(self) -> None:
        """Write what is still buffered (none unless a writer failed unexpectedly), then close.

        Raises LedgerError if that last write fails.
        """
        if self._closed:
            return
        try:
            with anyio.CancelScope(shield=True):
                while self._fd is not None and self._broken is None:
                    if self._in_flight is not None:
                        await self._in_flight.finished.wait()
                    elif self._current.chunks:
                        await self._flush()
                        if self._broken is not None:
                            raise self._error()
                    else:
                        break
        finally:
            self._closed = True
            if self._fd is not None:
                if self._created and self.records_written == 0 and not self._keep_empty:
                    _unlink_empty(self.path)  # nothing was sent: leave no 0-byte ledger behind
                os.close(self._fd)  # releases the lock
                self._fd = None

    # writing

    async def write(self, record: Mapping[str, Any]) -> None:
        """Append one record; returns when its line is durable. LedgerError if it cannot be."""
        await self.write_many((record,))

    async def write_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records in order, in one batch; returns when all are durable (one fsync).

        Every record is checked before any is queued, so a bad one writes none of them.
        """
        if self._fd is None:
            raise RuntimeError(
                "the ledger writer is closed" if self._closed else
                "the ledger writer is not open: use `async with LedgerWriter(path) as ledger:`"
            )  # fmt: skip
        if self._broken is not None:
            raise self._error()
        chunks = []
        expected = self.expected_sweep
        for raw in records:
            record = check_record(dict(raw))
            if record["event"] == "run_started":
                if expected is not None and record["sweep"] != expected:
                    raise LedgerError(
                        f"refusing to start a run of sweep {record['sweep']!r} in the ledger of "
                        f"sweep {expected!r}; pass a --ledger of its own to each sweep",
                        path=self.path,
                    )
                expected = record["sweep"]
            chunks.append(encode(record))
        if not chunks:
            return
        self.expected_sweep = expected
        batch = self._current
        batch.chunks.extend(chunks)
        if batch.has_writer:
            await batch.finished.wait()  # its writer writes my lines too
        else:
            batch.has_writer = True
            # Shielded: the others in the batch count on me. It waits for at most the batch in
            # flight, whose write is shielded too, and then writes this one.
            with anyio.CancelScope(shield=True):
                try:
                    while not batch.done and self._broken is None:
                        if self._in_flight is None:
                            await self._flush()  # mine is the current batch: write it
                        else:
                            await self._in_flight.finished.wait()
                finally:
                    if not batch.done:  # never written (the writer broke): release the others
                        batch.done = True
                        batch.finished.set()
            await anyio.lowlevel.checkpoint_if_cancelled()  # a cancel held off by the shield
        if self._broken is not None:
            raise self._error()

    async def _flush(self) -> None:
        batch, self._current = self._current, _Batch()
        self._in_flight = batch
        data = self._separator + b"".join(batch.chunks)
        try:
            with anyio.CancelScope(shield=True):  # a batch is written whole, whoever is cancelled
                await anyio.to_thread.run_sync(self._write_and_sync, data, limiter=self._thread)
            self._separator = b""
            self.records_written += len(batch.chunks)
        except BaseException as exc:  # the batch may be half-written: nothing more may follow it
            self._cause = exc
            self._broken = (
                _reason("append to the ledger", exc) if isinstance(exc, OSError)
                else f"cannot append to the ledger: {exc!r}"
            )  # fmt: skip
            log.error("batchsubmit.ledger.write_failed", path=self.path, error=self._broken)
            if not isinstance(exc, OSError):
                raise
        finally:
            self.batches += 1
            batch.done = True
            self._in_flight = None
            batch.finished.set()

    def _write_and_sync(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            if written <= 0:
                raise OSError(errno.EIO, "write wrote nothing")
            view = view[written:]
        self._sync(self._fd)
        self.fsyncs += 1

    def _error(self) -> LedgerError:
        assert self._broken is not None
        error = LedgerError(
            f"{self._broken}. The lines written before are safe: re-running the same command "
            "resumes from them",
            path=self.path,
        )
        error.__cause__ = self._cause
        return error

    @property
    def pending(self) -> int:
        """Records handed to ``write`` and not yet durable."""
        return len(self._current.chunks) + (len(self._in_flight.chunks) if self._in_flight else 0)

    def __repr__(self) -> str:
        state = (
            f"broken ({self._broken})" if self._broken is not None
            else "closed" if self._closed
            else "open" if self._fd is not None
            else "not open"
        )  # fmt: skip
        return (
            f"<LedgerWriter {self.path!r} {state} pending={self.pending} "
            f"written={self.records_written} batches={self.batches} fsyncs={self.fsyncs}>"
        )


def _unlink_empty(path: str) -> None:
    """Remove the file at ``path`` if it is (still) empty: a ledger this writer created."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_size == 0:
            os.unlink(path)
