"""Request authentication: AK/SK signing ("SDK-HMAC-SHA256"), IAM tokens, or nothing.

A pure core (no I/O, no event loop, no aiohttp): :func:`signed_headers` turns the headers and body a
request will carry into the complete header dict to send, signed exactly as
``huaweicloudsdkcore``'s ``Signer`` does (``tests/test_auth.py`` checks it against the SDK itself).
The signature covers what is sent, so the client must send *these* headers, *this* body, and the
URL as given; build its query with :func:`canonical_query`, the form that is signed.

The HTTP client only sees :class:`Credentials`: ``creds.headers_for(method, url, headers, body,
now)`` returns the headers to send. :func:`credentials_from_env` picks the kind from explicit
arguments or the environment. Secrets (SK, token) are ``SecretStr`` and never reach a ``repr``, a
``str``, a pydantic dump or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from batchsubmit.errors import UsageError

__all__ = [
    "ALGORITHM",
    "ENV_AK",
    "ENV_PROJECT_ID",
    "ENV_SK",
    "ENV_TOKEN",
    "AkSkCredentials",
    "Credentials",
    "NoCredentials",
    "TokenCredentials",
    "canonical_query",
    "canonical_request",
    "credentials_for",
    "credentials_from_env",
    "format_sdk_date",
    "host_header",
    "sign",
    "signed_headers",
]

ALGORITHM = "SDK-HMAC-SHA256"
ENV_AK = "HUAWEICLOUD_SDK_AK"
ENV_SK = "HUAWEICLOUD_SDK_SK"
ENV_PROJECT_ID = "HUAWEICLOUD_SDK_PROJECT_ID"
ENV_TOKEN = "MODELARTS_TOKEN"

_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 9110)
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls aiohttp refuses to send
_ID_CHARS = re.compile(r"[A-Za-z0-9._~-]+")  # AK and project id: unreserved URL characters
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")  # a token: one header value, no whitespace


# --------------------------------------------------------------------------- the pure core


def format_sdk_date(when: datetime) -> str:
    """``when`` in UTC as ``X-Sdk-Date`` wants it, e.g. ``20240101T000000Z`` (fractions dropped)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware one, e.g. datetime.now(UTC)")
    return _sdk_date(when.replace(microsecond=0))


# Every request of a second carries the same X-Sdk-Date: formatting and checking it once a second
# rather than once a request saves ~60 us a request (strptime is slow).
@lru_cache(maxsize=8)
def _sdk_date(second: datetime) -> str:
    return second.astimezone(UTC).strftime(_DATE_FORMAT)


@lru_cache(maxsize=8)
def _is_sdk_date(date: str) -> bool:
    """``date`` is a real date and time written as X-Sdk-Date wants it."""
    try:
        return datetime.strptime(date, _DATE_FORMAT).strftime(_DATE_FORMAT) == date
    except ValueError:
        return False


def canonical_query(params: Mapping[str, str | int] | Sequence[tuple[str, str | int]]) -> str:
    """The query string to send *and* sign: sorted pairs ``quote(k)=quote(v)`` joined by ``&``.

    Values are turned into text first (``True`` becomes ``true``, as in the SDK); a repeated key is
    a repeated pair. Sorting is on the unencoded (key, value) text, as the SDK sorts.
    """
    items = params.items() if isinstance(params, Mapping) else params
    pairs = sorted((key, _query_text(value)) for key, value in items)
    return "&".join(f"{_quote(key)}={_quote(value)}" for key, value in pairs)


def canonical_request(
    method: str, url: str, headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """The canonical request text and the SignedHeaders list (auth.md steps 3-8).

    Every header is signed except those whose name contains ``_``; nothing is added (see
    :func:`signed_headers` for X-Sdk-Date and Host). The query is read from ``url``, split on ``&``
    and ``=`` and percent-decoded (``+`` stays a plus), then put in canonical form.
    """
    return _canonical(method, url, _lowered_headers(headers), body)


def _canonical(method: str, url: str, values: Mapping[str, str], body: bytes) -> tuple[str, str]:
    """:func:`canonical_request` of headers already lowered and checked."""
    parts = urlsplit(url)
    if "x-sdk-content-sha256" in values:
        raise ValueError(
            "X-Sdk-Content-Sha256 is not supported: the exact body bytes are always hashed; "
            "remove that header"
        )
    names = sorted(name for name in values if "_" not in name)
    signed = ";".join(names)
    text = "\n".join(
        [
            method.upper(),
            _canonical_uri(parts.path or "/"),
            canonical_query(_parse_query(parts.query)),
            "".join(f"{name}:{values[name]}\n" for name in names),
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    return text, signed


def sign(
    method: str, url: str, headers: Mapping[str, str], body: bytes, *, ak: str, sk: str
) -> str:
    """The ``Authorization`` value for a request whose ``headers`` hold X-Sdk-Date and Host."""
    if not ak or not sk:
        raise ValueError("an access key and a secret key are both needed to sign")
    values = _lowered_headers(headers)
    for required in ("x-sdk-date", "host"):
        if required not in values:
            raise ValueError(f"{required} header missing: sign the headers as they are sent")
    if "authorization" in values:
        raise ValueError("headers already carry Authorization: drop it before signing again")
    date = values["x-sdk-date"]
    if not _is_sdk_date(date):
        raise ValueError(f"X-Sdk-Date {date!r} is not of the form 20240101T000000Z")
    text, signed = _canonical(method, url, values, body)
    digest = hashlib.sha256(text.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    signature = hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Access={ak}, SignedHeaders={signed}, Signature={signature}"


def signed_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    ak: str,
    sk: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to send: ``headers`` (values stripped) + X-Sdk-Date + Host + Authorization.

    A Host already in ``headers`` is kept; an X-Sdk-Date or Authorization already there (say, from
    an earlier attempt) is replaced, so re-signing the headers of a retry is safe.
    """
    out = {
        name: value.strip()
        for name, value in headers.items()
        if name.lower() not in ("x-sdk-date", "authorization")
    }
    if not any(name.lower() == "host" for name in out):
        out["Host"] = host_header(url)
    out["X-Sdk-Date"] = format_sdk_date(now)
    out["Authorization"] = sign(method, url, out, body, ak=ak, sk=sk)
    return out


@lru_cache(maxsize=64)  # pure, and a sweep's requests share one host
def host_header(url: str) -> str:
    """The ``Host`` value for ``url``: its host, and its port unless the scheme's default."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("need an absolute http:// or https:// URL, e.g. https://host/v1/...")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port
    return host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"


def _quote(text: str) -> str:
    return quote(text, safe="~")


def _query_text(value: str | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for piece in query.split("&"):
        if piece:
            key, _, value = piece.partition("=")
            # strict: an escape that is not UTF-8 has no canonical form the server would agree on
            pairs.append((unquote(key, errors="strict"), unquote(value, errors="strict")))
    return pairs


@lru_cache(maxsize=256)  # pure, and a sweep's creates share one path
def _canonical_uri(path: str) -> str:
    # As the SDK does: decode (an undecodable escape becomes U+FFFD), split (so %2F splits too),
    # quote each segment, and end with "/".
    uri = "/".join(_quote(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def _lowered_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased name -> stripped value; refuses names equal but for case, and unsendables."""
    values: dict[str, str] = {}
    for name, raw in headers.items():
        if not _TOKEN_CHARS.fullmatch(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        value = raw.strip()  # as the SDK does; signed_headers sends it stripped too
        if _UNSENDABLE.search(value):
            raise ValueError(f"header {name} has a control character (CR, LF...) in its value")
        lowered = name.lower()
        if lowered in values:
            raise ValueError(f"header {name} is given twice (names are case-insensitive)")
        values[lowered] = value
    return values


def _with(headers: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus ``extra``, an ``extra`` name replacing the same name in any case."""
    replaced = {name.lower() for name in extra}
    return {k: v for k, v in headers.items() if k.lower() not in replaced} | dict(extra)


# --------------------------------------------------------------------------- credentials


def _mask(value: str) -> str:
    return value[:4] + "…" if len(value) > 8 else "…"


class Credentials(BaseModel, ABC):
    """How requests authenticate. ``headers_for`` returns the complete headers to send."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: ClassVar[str]  # "aksk", "token" or "none": for log lines
    project_id: str

    @field_validator("project_id")
    @classmethod
    def _check_project_id(cls, value: str) -> str:
        if not _ID_CHARS.fullmatch(value):
            raise ValueError("must be non-empty, of letters, digits and . _ ~ - only")
        return value

    @abstractmethod
    def headers_for(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> dict[str, str]:
        """The headers to send with this request (``now`` dates a signature)."""

    def __setattr__(self, name: str, value: Any) -> None:
        """Refuse, without echoing ``value``: pydantic's frozen error would (hide_input or not)."""
        raise AttributeError(f"{type(self).__name__} is frozen: build a new one instead")

    def __delattr__(self, name: str) -> None:
        """Refuse: credentials are immutable."""
        raise AttributeError(f"{type(self).__name__} is frozen: build a new one instead")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Field prefixes only; secrets not at all (also used by ``str()`` and rich)."""
        names = sorted(type(self).model_fields, key=lambda name: name == "project_id")
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, SecretStr):
                yield name, _mask(value)


class AkSkCredentials(Credentials):
    """Access key + secret key: each request is signed; X-Project-Id is sent and signed."""

    kind: ClassVar[str] = "aksk"
    ak: str
    sk: SecretStr

    @field_validator("ak")
    @classmethod
    def _check_ak(cls, value: str) -> str:
        if not _ID_CHARS.fullmatch(value):
            raise ValueError("must be non-empty, of letters, digits and . _ ~ - only")
        return value

    @field_validator("sk")
    @classmethod
    def _check_sk(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    def headers_for(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> dict[str, str]:
        """``headers`` + X-Project-Id, X-Sdk-Date, Host and Authorization."""
        return signed_headers(
            method,
            url,
            _with(headers, {"X-Project-Id": self.project_id}),
            body,
            ak=self.ak,
            sk=self.sk.get_secret_value(),
            now=now,
        )


class TokenCredentials(Credentials):
    """An IAM token (valid 24 hours), sent as X-Auth-Token."""

    kind: ClassVar[str] = "token"
    token: SecretStr

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: SecretStr) -> SecretStr:
        if not _VISIBLE_ASCII.fullmatch(value.get_secret_value()):
            raise ValueError("must be non-empty visible ASCII without spaces")
        return value

    def headers_for(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> dict[str, str]:
        """``headers`` + X-Auth-Token and X-Project-Id."""
        extra = {"X-Auth-Token": self.token.get_secret_value(), "X-Project-Id": self.project_id}
        return _with(headers, extra)


class NoCredentials(Credentials):
    """No authentication at all: for the local emulator in open mode."""

    kind: ClassVar[str] = "none"

    def headers_for(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> dict[str, str]:
        """``headers`` unchanged."""
        return dict(headers)


_NO_CREDENTIALS = (
    f"no credentials: either set {ENV_AK} and {ENV_SK} (AK/SK request signing, recommended), "
    f"or set {ENV_TOKEN} (an IAM token, valid 24 hours); from Python, pass credentials= "
    "(bs.AkSkCredentials or bs.TokenCredentials). To try it without a cloud account, use "
    "--endpoint emulator, or a `batchsubmit emulator` on 127.0.0.1 (no credentials needed)"
)


def credentials_from_env(
    env: Mapping[str, str] | None = None,
    *,
    ak: str | None = None,
    sk: str | SecretStr | None = None,
    token: str | SecretStr | None = None,
    project_id: str | None = None,
    required: bool = True,
) -> Credentials:
    """Credentials from explicit arguments, else from ``env`` (default ``os.environ``).

    Order: explicit ak/sk, explicit token, ``HUAWEICLOUD_SDK_AK`` + ``HUAWEICLOUD_SDK_SK``,
    ``MODELARTS_TOKEN``; with none of them, :class:`NoCredentials` unless ``required``. A piece
    given explicitly wins over its variable. Values are stripped; an empty one counts as unset.
    The project id comes from ``project_id`` or ``HUAWEICLOUD_SDK_PROJECT_ID``. Every problem is
    a :class:`UsageError` that names the argument or variable, never its value.
    """
    env = os.environ if env is None else env
    explicit_ak, explicit_sk, explicit_token = _clean(ak), _clean(sk), _clean(token)
    env_ak, env_sk = _clean(env.get(ENV_AK)), _clean(env.get(ENV_SK))
    sources: dict[str, str] = {}
    fields: dict[str, str] = {}

    if (explicit_ak or explicit_sk) and explicit_token:
        raise UsageError("give an access key and secret key, or a token, not both")
    if explicit_ak or explicit_sk or (not explicit_token and (env_ak or env_sk)):
        for field, explicit, from_env, variable in (
            ("ak", explicit_ak, env_ak, ENV_AK),
            ("sk", explicit_sk, env_sk, ENV_SK),
        ):
            sources[field] = f"the {field} argument" if explicit else variable
            value = explicit or from_env
            if value is None:
                other = ENV_AK if field == "sk" else ENV_SK
                raise UsageError(
                    f"{variable} is not set (nor the {field} argument given): AK/SK signing needs "
                    f"both {ENV_AK} and {ENV_SK}; or unset {other} and use {ENV_TOKEN}"
                )
            fields[field] = value
        model: type[Credentials] = AkSkCredentials
    elif explicit_token or _clean(env.get(ENV_TOKEN)):
        sources["token"] = "the token argument" if explicit_token else ENV_TOKEN
        fields["token"] = explicit_token or _clean(env.get(ENV_TOKEN)) or ""
        model = TokenCredentials
    elif required:
        raise UsageError(_NO_CREDENTIALS)
    else:
        model = NoCredentials

    explicit_project = _clean(project_id)
    sources["project_id"] = "the project_id argument" if explicit_project else ENV_PROJECT_ID
    fields["project_id"] = explicit_project or _clean(env.get(ENV_PROJECT_ID)) or ""
    if not fields["project_id"]:
        raise UsageError(f"no project id: set {ENV_PROJECT_ID} or pass the project id explicitly")
    return _build(model, fields, sources)


def _build(
    model: type[Credentials], fields: dict[str, str], sources: dict[str, str]
) -> Credentials:
    """The credentials; a UsageError naming where a bad piece came from, never its value."""
    try:
        return model(**fields)
    except ValidationError as exc:  # inputs are hidden (hide_input_in_errors); say where, not what
        error = exc.errors()[0]
        where = sources.get(str(error["loc"][0]), "credentials")
        reason = error["msg"].removeprefix("Value error, ")
        raise UsageError(f"{where} is unusable: {reason}") from None


def credentials_for(
    endpoint: str, env: Mapping[str, str] | None = None, *, project_id: str | None = None
) -> Credentials:
    """The environment's credentials for ``endpoint``; on this machine (127.0.0.0/8, ::1,
    localhost: a local emulator, which may be open) none is needed, elsewhere one is."""
    return credentials_from_env(env, project_id=project_id, required=not _loopback(endpoint))


def _loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint.strip()).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _clean(value: str | SecretStr | None) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return (value.strip() or None) if value is not None else None
