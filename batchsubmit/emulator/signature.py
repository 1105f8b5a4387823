"""Server-side verification of AK/SK ("SDK-HMAC-SHA256") signatures, as auth.md describes.

The canonical request is rebuilt from what was *received* (method, raw path, raw query, the
headers named in SignedHeaders, the exact body bytes), never from what a client library would
have meant to send, so a client that signs one thing and sends another is caught. Pure
functions: no event loop, no aiohttp.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from calendar import timegm
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import strptime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
REQUIRED_SIGNED = ("host", "x-sdk-date")
_AUTH_RE = re.compile(
    r"SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<sh>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*"
)


class SignatureError(Exception):
    """Why a signed request was refused; the message names the check, never a secret."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """The three parts of an ``Authorization: SDK-HMAC-SHA256 ...`` header."""

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> Authorization:
    """Split the Authorization header; SignatureError if missing or garbled."""
    if not value:
        raise SignatureError("missing Authorization header")
    match = _AUTH_RE.fullmatch(value.strip())
    if match is None:
        if not value.strip().startswith(ALGORITHM):
            raise SignatureError(f"unsupported Authorization scheme (expected {ALGORITHM})")
        raise SignatureError(
            "garbled Authorization header (expected "
            f"'{ALGORITHM} Access=AK, SignedHeaders=a;b, Signature=hex')"
        )
    signed = tuple(match["sh"].split(";"))
    return Authorization(match["ak"], signed, match["sig"].lower())


def canonical_uri(raw_path: str) -> str:
    """Decode the path, quote each segment (safe '~'), and end it with '/'."""
    uri = "/".join(quote(segment, safe="~") for segment in unquote(raw_path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: str) -> str:
    """Sorted ``quote(k)=quote(v)`` pairs joined by '&', from the query string as received."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    pairs.sort()
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    body: bytes,
) -> str:
    """The string whose hash is signed; ``headers`` maps lower-cased names to received values."""
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        )
    )


def string_to_sign(sdk_date: str, canonical: str) -> str:
    """Algorithm, date and the hex SHA-256 of the canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def sign(secret_key: str, to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed by the SK."""
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_sdk_date(value: str) -> float:
    """``YYYYMMDDTHHMMSSZ`` (UTC) to epoch seconds; SignatureError if malformed."""
    try:
        return float(timegm(strptime(value, DATE_FORMAT)))
    except ValueError:
        raise SignatureError("malformed X-Sdk-Date (expected YYYYMMDDTHHMMSSZ, UTC)") from None


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: float,
    window_seconds: float = 900.0,
) -> str:
    """Check a received request's signature; returns its AK, or raises SignatureError.

    ``headers`` maps lower-cased names to values (repeated headers joined by ","), and
    ``secret_for`` returns the SK of an AK or None. Checks, in order: header syntax, known AK,
    required and present signed headers, date within ``window_seconds`` of ``now``, signature.
    """
    auth = parse_authorization(headers.get("authorization"))
    secret = secret_for(auth.access_key)
    if secret is None:
        raise SignatureError("unknown access key")
    missing_required = [name for name in REQUIRED_SIGNED if name not in auth.signed_headers]
    if missing_required:
        raise SignatureError(f"SignedHeaders must include {' and '.join(missing_required)}")
    for name in auth.signed_headers:
        if name != name.lower() or not name:
            raise SignatureError("SignedHeaders must be lower-case header names")
        if name not in headers:
            raise SignatureError(f"signed header {name} is not in the request")
    sdk_date = headers["x-sdk-date"].strip()
    if abs(parse_sdk_date(sdk_date) - now) > window_seconds:
        raise SignatureError(
            f"date out of window (X-Sdk-Date must be within {window_seconds:g} s of server time)"
        )
    canonical = canonical_request(method, raw_path, raw_query, headers, auth.signed_headers, body)
    expected = sign(secret, string_to_sign(sdk_date, canonical))
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError("signature mismatch")
    return auth.access_key
