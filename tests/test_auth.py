"""Request authentication: the signing core against auth.md and the SDK, and credentials."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from batchsubmit.auth import (
    AkSkCredentials,
    Credentials,
    NoCredentials,
    TokenCredentials,
    canonical_query,
    canonical_request,
    credentials_from_env,
    format_sdk_date,
    host_header,
    sign,
    signed_headers,
)
from batchsubmit.errors import Disposition, UsageError

AK = "AKTESTAKTESTAKTEST"
SK = "SKtestSKtestSKtestSKtestSKtestSKtestSKte"
PROJECT = "0123456789abcdef0123456789abcdef"
HOST = "modelarts.cn-north-4.myhuaweicloud.com"
VERSIONS = f"https://{HOST}/v1/{PROJECT}/training-jobs/10/versions"
DATE = "20240101T000000Z"
NEW_YEAR = datetime(2024, 1, 1, tzinfo=UTC)
JSON = {"Content-Type": "application/json", "X-Project-Id": PROJECT}
BODY = b'{"job_desc": "d", "config": {"worker_server_num": 1, "pre_version_id": 20}}'
TOKEN = "MIIxSECRETtokenVALUE-_.42"


def signature_of(authorization: str) -> tuple[str, str]:
    """(SignedHeaders, Signature) out of an Authorization value."""
    fields = dict(part.split("=", 1) for part in authorization.split(" ", 1)[1].split(", "))
    return fields["SignedHeaders"], fields["Signature"]


# --------------------------------------------------------------------------- auth.md vectors


def test_vector_1_post_with_json_body() -> None:
    """auth.md vector 1: a POST with a JSON body signs content-type, host, x-project-id, date."""
    headers = {**JSON, "X-Sdk-Date": DATE, "Host": HOST}
    assert signature_of(sign("POST", VERSIONS, headers, BODY, ak=AK, sk=SK)) == (
        "content-type;host;x-project-id;x-sdk-date",
        "f3123cd484ecef0e93f9a0e1dda998d1a5002ad8df104595615a6a70da10b44c",
    )


def test_vector_2_get_with_query() -> None:
    """auth.md vector 2: a GET with ?page=1&per_page=5 and no body."""
    url = f"{VERSIONS}?{canonical_query({'page': 1, 'per_page': 5})}"
    assert url.endswith("/versions?page=1&per_page=5")
    headers = {**JSON, "X-Sdk-Date": DATE, "Host": HOST}
    assert signature_of(sign("GET", url, headers, b"", ak=AK, sk=SK)) == (
        "content-type;host;x-project-id;x-sdk-date",
        "dd6d0422fe3d28bff6cf733637d87d24727f26a024dc794b8948a828758072fb",
    )


def test_vector_3_underscore_header_is_not_signed() -> None:
    """auth.md vector 3: X_Custom (a name with `_`) is sent but left out of SignedHeaders."""
    headers = {"X-Sdk-Date": DATE, "X_Custom": "skipped"}
    sent = signed_headers("GET", f"{VERSIONS}/11", headers, b"", ak=AK, sk=SK, now=NEW_YEAR)
    assert sent["X_Custom"] == "skipped"
    assert signature_of(sent["Authorization"]) == (
        "host;x-sdk-date",
        "33acfa8385adcbac3b782f0ef8df763b836628a3ef68b4bd3ee11c38bc179482",
    )


def test_vectors_through_signed_headers_and_credentials() -> None:
    """AkSkCredentials.headers_for reproduces vector 1 from the bare Content-Type header."""
    creds = AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PROJECT)
    sent = creds.headers_for("POST", VERSIONS, {"Content-Type": "application/json"}, BODY, NEW_YEAR)
    assert sent == {
        **JSON,
        "Host": HOST,
        "X-Sdk-Date": DATE,
        "Authorization": f"SDK-HMAC-SHA256 Access={AK}, "
        "SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        "Signature=f3123cd484ecef0e93f9a0e1dda998d1a5002ad8df104595615a6a70da10b44c",
    }


def test_canonical_request_text_of_vector_3() -> None:
    """Canonical request: METHOD, URI ending in /, query, headers, blank line, names, hash."""
    text, names = canonical_request(
        "get", f"{VERSIONS}/11", {"X-Sdk-Date": DATE, "X_Custom": "skipped", "Host": HOST}, b""
    )
    assert names == "host;x-sdk-date"
    assert text == (
        f"GET\n/v1/{PROJECT}/training-jobs/10/versions/11/\n\n"
        f"host:{HOST}\nx-sdk-date:{DATE}\n\nhost;x-sdk-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


# --------------------------------------------------------------------------- the pure core


def test_format_sdk_date_converts_to_utc_and_drops_microseconds() -> None:
    """format_sdk_date renders any aware time in UTC as YYYYMMDDTHHMMSSZ, truncating fractions."""
    beijing = timezone(timedelta(hours=8))
    assert format_sdk_date(NEW_YEAR) == DATE
    assert format_sdk_date(datetime(2024, 1, 1, 8, 0, 0, 999_999, tzinfo=beijing)) == DATE


def test_format_sdk_date_refuses_naive_times() -> None:
    """A naive datetime is ambiguous, so format_sdk_date refuses it."""
    with pytest.raises(ValueError, match="naive"):
        format_sdk_date(datetime(2024, 1, 1))


def test_canonical_query_sorts_and_quotes() -> None:
    """canonical_query sorts pairs on unencoded text and quotes all but unreserved chars and ~."""
    assert canonical_query({"b": "x y", "a": "ü+&=~", "c": True, "d": 7}) == (
        "a=%C3%BC%2B%26%3D~&b=x%20y&c=true&d=7"
    )
    assert canonical_query([("k", "2"), ("k", "1"), ("j", "")]) == "j=&k=1&k=2"
    assert canonical_query([("é", "1"), ("~", "1")]) == "~=1&%C3%A9=1"
    assert canonical_query({}) == ""


def test_canonical_request_canonicalises_the_url_query() -> None:
    """A query in the URL is decoded and put in canonical form; `+` is a literal plus."""
    text, _ = canonical_request("GET", "http://h/p?b=2&a=x+y&flag&&c=%7e", {"Host": "h"}, b"")
    assert text.split("\n")[2] == "a=x%2By&b=2&c=~&flag="


def test_canonical_request_refuses_non_utf8_query_escapes() -> None:
    """A query escape that is not UTF-8 has no canonical form, so it is refused."""
    with pytest.raises(ValueError):
        canonical_request("GET", "http://h/p?a=%FF", {"Host": "h"}, b"")


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        ("/v1/p", "/v1/p/"),
        ("/v1/p/", "/v1/p/"),
        ("/a b/%7e~/ü", "/a%20b/~~/%C3%BC/"),
        ("/a%2Fb", "/a/b/"),
        ("/x%FF", "/x%EF%BF%BD/"),
        ("/a//b", "/a//b/"),
    ],
)
def test_canonical_uri(path: str, canonical: str) -> None:
    """The path is decoded, split on / (even an encoded one), re-quoted, and ends with /."""
    text, _ = canonical_request("GET", f"https://h{path}", {"Host": "h"}, b"")
    assert text.split("\n")[1] == canonical


def test_header_values_are_stripped_and_names_lowered() -> None:
    """Header names are lower-cased and sorted, values stripped, in CanonicalHeaders."""
    text, names = canonical_request(
        "PUT", "https://h/", {"X-B": "  two  ", "x-a": "\tone", "Host": "h"}, b"x"
    )
    assert names == "host;x-a;x-b"
    assert "\nhost:h\nx-a:one\nx-b:two\n\n" in text


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "h", "X-A": "1", "x-a": "2"},
        {"Host": "h", "X-A": "1\r\nX-Evil: 1"},
        {"Host": "h", "X-A": "1\x0b2"},
        {"Host": "h", "Bad Name": "1"},
        {"Host": "h", "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"},
    ],
)
def test_unsignable_headers_are_refused(headers: dict[str, str]) -> None:
    """Names equal but for case, control chars in values, non-tokens, X-Sdk-Content-Sha256 raise."""
    with pytest.raises(ValueError):
        canonical_request("GET", "https://h/", headers, b"")


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Host": HOST}, "x-sdk-date"),
        ({"X-Sdk-Date": DATE}, "host"),
        ({"Host": HOST, "X-Sdk-Date": "2024-01-01T00:00:00Z"}, "form"),
        ({"Host": HOST, "X-Sdk-Date": "2024111T000000Z"}, "form"),
        ({"Host": HOST, "X-Sdk-Date": DATE, "Authorization": "old"}, "Authorization"),
    ],
)
def test_sign_needs_date_and_host_and_no_old_signature(
    headers: dict[str, str], problem: str
) -> None:
    """sign() refuses headers without X-Sdk-Date or Host, a malformed date, or an Authorization."""
    with pytest.raises(ValueError, match=problem):
        sign("GET", VERSIONS, headers, b"", ak=AK, sk=SK)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:8642/v1/p", "127.0.0.1:8642"),
        ("https://H.example.com:443/v1", "h.example.com"),
        ("http://h.example.com:80/", "h.example.com"),
        ("https://h.example.com:80/", "h.example.com:80"),
        ("http://h.example.com:443/", "h.example.com:443"),
        ("https://user@h.example.com/", "h.example.com"),
        ("http://[::1]:8642/", "[::1]:8642"),
        ("https://[::1]/", "[::1]"),
    ],
)
def test_host_header_has_port_only_when_not_default(url: str, host: str) -> None:
    """Host is host[:port], the port omitted when it is the scheme's default (443 / 80)."""
    assert host_header(url) == host
    sent = signed_headers("GET", url, {}, b"", ak=AK, sk=SK, now=NEW_YEAR)
    assert sent["Host"] == host


def test_host_header_needs_an_absolute_http_url() -> None:
    """A relative or non-HTTP URL has no Host, so it is refused."""
    for url in ("/v1/p", "ftp://h/x"):
        with pytest.raises(ValueError, match="absolute"):
            host_header(url)


def test_signed_headers_keeps_a_given_host_and_replaces_date_and_signature() -> None:
    """A given Host is kept; an old X-Sdk-Date/Authorization is replaced: re-signing is safe."""
    first = signed_headers("GET", VERSIONS, {"host": "proxy:1"}, b"", ak=AK, sk=SK, now=NEW_YEAR)
    assert first["host"] == "proxy:1"
    assert "Host" not in first
    again = signed_headers("GET", VERSIONS, first, b"", ak=AK, sk=SK, now=NEW_YEAR)
    assert again == first
    later = signed_headers(
        "GET", VERSIONS, first, b"", ak=AK, sk=SK, now=NEW_YEAR + timedelta(seconds=1)
    )
    assert later["X-Sdk-Date"] == "20240101T000001Z"
    assert later["Authorization"] != first["Authorization"]


def test_signed_headers_does_not_touch_its_input() -> None:
    """signed_headers returns a new dict and leaves the caller's headers unchanged."""
    given_headers = {"X-A": " 1 "}
    signed_headers("GET", VERSIONS, given_headers, b"", ak=AK, sk=SK, now=NEW_YEAR)
    assert given_headers == {"X-A": " 1 "}


def assert_signs_exactly_what_is_sent(sent: dict[str, str]) -> None:
    """SignedHeaders == every sent header name without `_`, Authorization aside."""
    names, _ = signature_of(sent["Authorization"])
    expected = sorted(n.lower() for n in sent if "_" not in n and n.lower() != "authorization")
    assert names.split(";") == expected


def test_signature_covers_exactly_the_returned_headers() -> None:
    """Every returned header without `_` is signed, and nothing that is not returned is."""
    sent = signed_headers(
        "POST",
        "http://127.0.0.1:8642/v1/p/training-jobs/1/versions",
        {"Content-Type": "application/json", "X_Trace": "t", "X-Request-Id": " r "},
        b"{}",
        ak=AK,
        sk=SK,
        now=NEW_YEAR,
    )
    assert set(sent) == {
        "Content-Type", "X_Trace", "X-Request-Id", "Host", "X-Sdk-Date", "Authorization"
    }  # fmt: skip
    assert sent["X-Request-Id"] == "r"
    assert_signs_exactly_what_is_sent(sent)


# --------------------------------------------------------------------------- the SDK as oracle


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """huaweicloudsdkcore's Signer and SdkRequest, imported with HOME in a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        signer = importlib.import_module("huaweicloudsdkcore.signer.signer")
        request = importlib.import_module("huaweicloudsdkcore.sdk_request")
        yield SimpleNamespace(Signer=signer.Signer, SdkRequest=request.SdkRequest)


def test_sdk_oracle_reproduces_vector_1(sdk: SimpleNamespace) -> None:
    """The SDK itself gives auth.md's vector 1, so it is a fair oracle."""
    request = sdk.SdkRequest(
        method="POST",
        schema="https",
        host=HOST,
        resource_path=f"/v1/{PROJECT}/training-jobs/10/versions",
        query_params=[],
        header_params={**JSON, "X-Sdk-Date": DATE},
        body=BODY,
    )
    sdk.Signer(SimpleNamespace(ak=AK, sk=SK)).sign(request)
    assert signature_of(request.header_params["Authorization"])[1] == (
        "f3123cd484ecef0e93f9a0e1dda998d1a5002ad8df104595615a6a70da10b44c"
    )


_RESERVED = {"host", "x-sdk-date", "authorization", "content-type", "x-sdk-content-sha256"}
_PERCENT_ESCAPE = st.builds(
    lambda byte, upper: f"%{byte:02X}" if upper else f"%{byte:02x}",
    st.integers(0, 255),
    st.booleans(),
)
_PATH_CHAR = st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/?#%")
_SEGMENT_TEXT = st.lists(
    st.one_of(_PATH_CHAR, st.sampled_from(["~", " ", "%7E", "%20", "%2F", "+", ";", "="])),
    max_size=8,
).map("".join)


@st.composite
def _segment(draw: st.DrawFn) -> str:
    """A path segment as written in a URL: raw unicode and spaces, or quoted; %-escapes of bytes."""
    pieces = draw(st.lists(st.one_of(_SEGMENT_TEXT, _PERCENT_ESCAPE), max_size=3))
    text = "".join(pieces)
    return quote(text, safe="%~") if draw(st.booleans()) else text


@st.composite
def _path(draw: st.DrawFn) -> str:
    segments = draw(st.lists(_segment(), max_size=5))
    trailing = "/" if draw(st.booleans()) and segments else ""
    return "/" + "/".join(segments) + trailing


_QUERY_CHAR = st.one_of(
    st.characters(exclude_categories=["Cs"]), st.sampled_from([" ", "+", "&", "=", "%", "~"])
)
_QUERY_TEXT = st.text(_QUERY_CHAR, max_size=6)
_QUERY = st.lists(
    st.tuples(st.one_of(_QUERY_TEXT, st.sampled_from(["page", "per_page", "k"])), _QUERY_TEXT),
    max_size=6,
)
_TOKEN_CHARS = st.sampled_from("abcXYZ019-_!#$&'*+.^`|~")
_HEADER_NAME = st.text(_TOKEN_CHARS, min_size=1, max_size=10).filter(
    lambda name: name.lower() not in _RESERVED
)
_CONTROLS = "".join(map(chr, [*range(0x09), *range(0x0A, 0x20), 0x7F]))  # aiohttp refuses them
_SPACE = st.text(st.sampled_from(" \t\x0b\x0c\x1c\xa0\u3000"), max_size=3)
_HEADER_VALUE = st.builds(
    lambda before, core, after: before + core + after,
    _SPACE,
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters=_CONTROLS), max_size=10),
    _SPACE,
)
_HEADERS = st.lists(
    st.tuples(_HEADER_NAME, _HEADER_VALUE), max_size=5, unique_by=lambda kv: kv[0].lower()
).map(dict)
_ORIGIN = st.sampled_from(
    [("https", HOST, HOST), ("http", "127.0.0.1:8642", "127.0.0.1:8642"), ("https", "h:443", "h")]
)
_NOW = st.datetimes(
    min_value=datetime(2000, 1, 1),  # hypothesis bounds are naive
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
)


@settings(max_examples=600, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    origin=_ORIGIN,
    path=_path(),
    query=_QUERY,
    headers=_HEADERS,
    content_type=st.sampled_from([None, "application/json", "application/json;charset=UTF-8"]),
    body=st.binary(max_size=64),
    sk=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40),
    now=_NOW,
)
def test_matches_the_sdk_signer(
    sdk: SimpleNamespace,
    method: str,
    origin: tuple[str, str, str],
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    content_type: str | None,
    body: bytes,
    sk: str,
    now: datetime,
) -> None:
    """For any request, our headers, Authorization and sent URI equal huaweicloudsdkcore's."""
    scheme, netloc, host = origin
    if content_type is not None:
        headers = {**headers, "Content-Type": content_type}
    query_string = canonical_query(query)
    uri = f"{path}?{query_string}" if query_string else path
    sent = signed_headers(method, f"{scheme}://{netloc}{uri}", headers, body, ak=AK, sk=sk, now=now)

    request = sdk.SdkRequest(
        method=method,
        schema=scheme,
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params={**headers, "X-Sdk-Date": format_sdk_date(now)},
        body=body,
    )
    sdk.Signer(SimpleNamespace(ak=AK, sk=sk)).sign(request)

    assert sent["Authorization"] == request.header_params["Authorization"]
    # the SDK keeps header values as UTF-8 bytes decoded as Latin-1 (for http.client); undo that
    assert sent == {k: v.encode("iso-8859-1").decode() for k, v in request.header_params.items()}
    assert uri == request.uri
    assert_signs_exactly_what_is_sent(sent)


# --------------------------------------------------------------------------- credentials

ENV_AKSK = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
ENV_ALL = {**ENV_AKSK, "MODELARTS_TOKEN": TOKEN, "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT}


def shown(obj: Any) -> str:
    """Everything an object shows of itself: repr, str, and its pydantic dumps."""
    return " ".join([repr(obj), str(obj), f"{obj}", str(obj.model_dump()), obj.model_dump_json()])


def test_aksk_from_env() -> None:
    """HUAWEICLOUD_SDK_AK + _SK + _PROJECT_ID give AK/SK credentials."""
    creds = credentials_from_env({**ENV_AKSK, "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT})
    assert creds == AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PROJECT)
    assert creds.kind == "aksk"


def test_aksk_wins_over_token_in_env() -> None:
    """With both AK/SK and MODELARTS_TOKEN in the environment, AK/SK is used."""
    assert isinstance(credentials_from_env(ENV_ALL), AkSkCredentials)


def test_token_from_env() -> None:
    """MODELARTS_TOKEN alone gives token credentials."""
    creds = credentials_from_env({"MODELARTS_TOKEN": TOKEN, "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT})
    assert creds == TokenCredentials(token=SecretStr(TOKEN), project_id=PROJECT)


def test_explicit_arguments_win() -> None:
    """Explicit arguments beat the environment: a token over env AK/SK, an AK/SK over env ones."""
    assert isinstance(credentials_from_env(ENV_ALL, token="tok"), TokenCredentials)
    creds = credentials_from_env(ENV_ALL, ak="OTHERAK", sk=SecretStr("othersk"), project_id="p2")
    assert creds == AkSkCredentials(ak="OTHERAK", sk=SecretStr("othersk"), project_id="p2")


def test_explicit_piece_falls_back_to_env_for_the_other() -> None:
    """An explicit AK with no explicit SK takes HUAWEICLOUD_SDK_SK."""
    creds = credentials_from_env({**ENV_AKSK, "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT}, ak="AK2")
    assert creds == AkSkCredentials(ak="AK2", sk=SecretStr(SK), project_id=PROJECT)


def test_explicit_aksk_and_token_together_are_refused() -> None:
    """Giving an AK/SK and a token explicitly is ambiguous: UsageError."""
    with pytest.raises(UsageError, match="not both"):
        credentials_from_env({}, ak=AK, sk=SK, token=TOKEN, project_id=PROJECT)


def test_values_are_stripped_and_empty_counts_as_unset() -> None:
    """A pasted trailing newline is stripped; an empty variable is as good as unset."""
    env = {"HUAWEICLOUD_SDK_AK": f" {AK}\n", "HUAWEICLOUD_SDK_SK": f"{SK}\n", "MODELARTS_TOKEN": ""}
    creds = credentials_from_env({**env, "HUAWEICLOUD_SDK_PROJECT_ID": f"{PROJECT}\n"})
    assert creds == AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PROJECT)


@pytest.mark.parametrize(
    ("env", "missing", "secret"),
    [
        ({"HUAWEICLOUD_SDK_AK": AK, "MODELARTS_TOKEN": TOKEN}, "HUAWEICLOUD_SDK_SK", AK),
        ({"HUAWEICLOUD_SDK_SK": SK}, "HUAWEICLOUD_SDK_AK", SK),
        ({"HUAWEICLOUD_SDK_SK": SK, "HUAWEICLOUD_SDK_AK": "  "}, "HUAWEICLOUD_SDK_AK", SK),
    ],
)
def test_half_an_aksk_pair_names_the_missing_variable(
    env: dict[str, str], missing: str, secret: str
) -> None:
    """AK without SK (or SK without AK) raises UsageError naming the missing variable, no value."""
    with pytest.raises(UsageError) as caught:
        credentials_from_env({**env, "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT})
    message = str(caught.value)
    assert message.startswith(f"{missing} is not set")
    assert secret not in message
    assert TOKEN not in message
    assert caught.value.disposition is Disposition.ABORT


def test_nothing_at_all_explains_the_options() -> None:
    """With no credentials and required=True the UsageError names AK/SK, token, the Python
    argument and the ways to try without an account."""
    with pytest.raises(UsageError) as caught:
        credentials_from_env({"HUAWEICLOUD_SDK_PROJECT_ID": PROJECT})
    message = str(caught.value)
    for option in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "MODELARTS_TOKEN", "credentials=",
                   "--endpoint emulator"):
        assert option in message


def test_nothing_at_all_when_not_required_is_no_credentials() -> None:
    """With required=False and nothing configured, NoCredentials passes headers through."""
    creds = credentials_from_env({"HUAWEICLOUD_SDK_PROJECT_ID": PROJECT}, required=False)
    assert creds == NoCredentials(project_id=PROJECT)
    assert creds.headers_for("GET", VERSIONS, {"A": "1"}, b"", NEW_YEAR) == {"A": "1"}


def test_project_id_explicit_wins_and_missing_is_an_error() -> None:
    """The project_id argument beats HUAWEICLOUD_SDK_PROJECT_ID; neither is a UsageError."""
    assert credentials_from_env(ENV_ALL, project_id="other").project_id == "other"
    with pytest.raises(UsageError, match="HUAWEICLOUD_SDK_PROJECT_ID"):
        credentials_from_env(ENV_AKSK)
    with pytest.raises(UsageError, match="HUAWEICLOUD_SDK_PROJECT_ID"):
        credentials_from_env({}, required=False)


@pytest.mark.parametrize(
    ("kwargs", "where", "secret"),
    [
        ({"env": {"MODELARTS_TOKEN": "SECRET token"}}, "MODELARTS_TOKEN", "SECRET"),
        ({"env": {}, "token": "SECRET\ttoken"}, "the token argument", "SECRET"),
        ({"env": {**ENV_AKSK, "HUAWEICLOUD_SDK_AK": "AK,SECRET"}}, "HUAWEICLOUD_SDK_AK", "SECRET"),
        ({"env": ENV_AKSK, "project_id": "p/SECRET"}, "the project_id argument", SK),
    ],
)
def test_unusable_values_name_their_source_not_their_value(
    kwargs: dict[str, Any], where: str, secret: str
) -> None:
    """A malformed token, AK or project id raises UsageError naming where it came from, no value."""
    kwargs.setdefault("project_id", PROJECT)
    with pytest.raises(UsageError) as caught:
        credentials_from_env(**kwargs)
    assert str(caught.value).startswith(f"{where} is unusable")
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an env mapping, credentials_from_env reads os.environ."""
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELARTS_TOKEN", TOKEN)
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", PROJECT)
    assert isinstance(credentials_from_env(), TokenCredentials)


def test_repr_masks_ak_and_hides_sk() -> None:
    """repr shows a 4-character prefix of AK and project id, and nothing of the SK."""
    creds = AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PROJECT)
    assert repr(creds) == "AkSkCredentials(ak='AKTE…', project_id='0123…')"
    assert SK not in shown(creds)
    assert AK not in repr(creds) + str(creds)
    assert PROJECT not in repr(creds) + str(creds)


def test_token_never_shown() -> None:
    """repr, str and pydantic dumps of token credentials never contain the token."""
    creds = TokenCredentials(token=SecretStr(TOKEN), project_id=PROJECT)
    assert repr(creds) == "TokenCredentials(project_id='0123…')"
    assert TOKEN not in shown(creds)


def test_construction_errors_hide_secrets() -> None:
    """Pydantic validation errors do not echo the rejected input."""
    with pytest.raises(ValueError) as caught:
        TokenCredentials(token=SecretStr("SECRET with space"), project_id=PROJECT)
    assert "SECRET" not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        AkSkCredentials(ak="bad ak", sk=SecretStr(""), project_id=PROJECT)
    assert "bad ak" not in str(caught.value)


def test_credentials_are_frozen_and_say_nothing_when_assigned() -> None:
    """Assigning or deleting a field raises, without echoing the assigned value."""
    creds = AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PROJECT)
    with pytest.raises(AttributeError) as caught:
        creds.sk = SecretStr("NEWSECRET")
    assert "NEWSECRET" not in str(caught.value)
    with pytest.raises(AttributeError):
        del creds.ak
    assert creds.sk.get_secret_value() == SK


def test_credentials_is_an_abstract_base() -> None:
    """Credentials cannot be built itself; every kind is one."""
    with pytest.raises(TypeError):
        Credentials(project_id=PROJECT)  # type: ignore[abstract]
    for creds in (
        AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PROJECT),
        TokenCredentials(token=SecretStr(TOKEN), project_id=PROJECT),
        NoCredentials(project_id=PROJECT),
    ):
        assert isinstance(creds, Credentials)


def test_aksk_headers_for_signs_the_project_id() -> None:
    """AK/SK credentials send X-Project-Id (replacing any case variant) and sign it."""
    creds = AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PROJECT)
    sent = creds.headers_for("GET", VERSIONS, {"x-project-id": "stale"}, b"", NEW_YEAR)
    assert sent["X-Project-Id"] == PROJECT
    assert "x-project-id" not in sent
    assert "x-project-id" in signature_of(sent["Authorization"])[0].split(";")
    assert_signs_exactly_what_is_sent(sent)


def test_token_headers_for_adds_token_and_project() -> None:
    """Token credentials add X-Auth-Token and X-Project-Id and no signature."""
    creds = TokenCredentials(token=SecretStr(TOKEN), project_id=PROJECT)
    sent = creds.headers_for("POST", VERSIONS, {"Content-Type": "text/plain"}, b"{}", NEW_YEAR)
    assert sent == {"Content-Type": "text/plain", "X-Auth-Token": TOKEN, "X-Project-Id": PROJECT}
