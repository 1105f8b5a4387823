"""aiohttp's default SSL contexts, built when aiohttp is imported, with their CA store loaded later.

``aiohttp.connector`` builds two SSL contexts at import (a verified and an unverified one), each
loading the system's CA store: with OpenSSL 3 that parses the whole bundle, ~45 ms each on a
small machine, a sixth of ``run``'s start. A run against an ``http://`` endpoint never uses them
(the client follows no redirect); one against ``https://`` needs them only when it connects.

So ``run`` imports aiohttp inside :func:`ca_store_deferred`: the contexts are aiohttp's own
objects with aiohttp's settings, built without the CA store, and :func:`load_deferred_ca_store`
loads it into them before the first TLS connection (``run`` calls it as soon as the endpoint is
known, unless that is ``http://`` or the embedded emulator) and, at the latest, when the command
ends, for an in-process caller that goes on to use aiohttp. Until then the verified context fails
closed: it requires a certificate and trusts none, so no handshake can succeed with it.

Only the command line does this (it owns the process); importing the library never defers.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

__all__ = ["ca_store_deferred", "load_deferred_ca_store", "may_use_tls"]

_owed: list[ssl.SSLContext] = []  # contexts built in ca_store_deferred, their CA store not loaded


def _defer(context: ssl.SSLContext) -> None:
    """Stands in for ``SSLContext.set_default_verify_paths`` while aiohttp is imported."""
    _owed.append(context)


@contextlib.contextmanager
def ca_store_deferred() -> Iterator[None]:
    """While the block runs, SSL contexts built load no default CA store (it is owed instead).

    Does nothing when aiohttp's contexts exist already, or ``ssl.SSLContext`` is not the
    standard library's as we know it (another library patched it)."""
    if "aiohttp.connector" in sys.modules or "set_default_verify_paths" in vars(ssl.SSLContext):
        yield
        return
    ssl.SSLContext.set_default_verify_paths = _defer  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        del ssl.SSLContext.set_default_verify_paths  # the inherited method again


def load_deferred_ca_store() -> None:
    """Load the default CA store into every context that owes it (once; then nothing)."""
    while _owed:
        _owed.pop().set_default_verify_paths()


def may_use_tls(endpoint: str) -> bool:
    """Whether a run against ``endpoint`` may open a TLS connection (all but http:// and the
    embedded emulator: an endpoint not understood here counts as one that may)."""
    endpoint = endpoint.strip()
    return endpoint != "emulator" and urlsplit(endpoint).scheme.lower() != "http"
