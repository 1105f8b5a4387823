"""A point's identity on the server survives what the server may rewrite (U1-U3)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchsubmit.errors import IdentityConflictError
from batchsubmit.identity import disagreements, normalise_train_url, same_value
from batchsubmit.models import Version
from batchsubmit.sweep import render_value
from batchsubmit.v1 import Listing, identity


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("/bucket/out/p1/", "/bucket/out/p1"),
        ("/bucket/out/p1", "/bucket/out/p1"),
        ("obs://bucket/out/p1/", "/bucket/out/p1"),
        ("OBS://bucket/out/p1", "/bucket/out/p1"),
        ("/bucket//out///p1//", "/bucket/out/p1"),
        ("bucket/out/p1", "/bucket/out/p1"),
        ("  /bucket/out/p1/ ", "/bucket/out/p1"),
        ("/Bucket/Out/P1", "/Bucket/Out/P1"),  # case is kept: OBS keys are case-sensitive
        ("/", "/"),
    ],
)
def test_train_urls_normalise_to_one_form(raw: str, normal: str) -> None:
    """Scheme, doubled and final slashes go; everything else, case included, stays."""
    assert normalise_train_url(raw) == normal


@pytest.mark.parametrize(
    ("sent", "listed"),
    [("0.010", "0.01"), ("0.01", "1e-2"), ("1E-2", "0.010"), ("32", "32.0"), ("-0", "0"),
     ("true", "True"), ("false", "FALSE"), ("adam", "adam"), ("", ""),
     ("0.1234567890123456789", "0.12345678901234568")],  # a float echo of a long decimal
)
def test_values_equal_as_the_server_may_echo_them(sent: str, listed: str) -> None:
    """Numbers compare by value, booleans by truth, the rest exactly."""
    assert same_value(sent, listed)


@pytest.mark.parametrize(
    ("sent", "listed"),
    [("0.01", "0.011"), ("32", "33"), ("12345678901234567890", "12345678901234567891"),
     ("true", "false"), ("true", "1"), ("adam", "Adam"), ("nan", "NaN"), ("0x10", "16"),
     ("", "0")],
)
def test_different_values_stay_different(sent: str, listed: str) -> None:
    """Integers compare exactly, text by its characters; nan and hex are no numbers."""
    assert not same_value(sent, listed)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_rendered_float_equals_its_json_number_echo(value: float) -> None:
    """Whatever string a sweep value renders to, the server's JSON-number echo of it matches."""
    sent = render_value(value)
    echoed = json.loads(json.dumps(float(Decimal(sent))))  # the echo a JSON encoder would make
    listed = Version.model_validate(
        {"version_id": 1, "parameter": [{"label": "x", "value": echoed}]}
    )
    assert disagreements([("x", sent)], listed.parameter_pairs) == []


def test_disagreements_tolerate_order_and_added_labels_but_not_missing_ones() -> None:
    """Order and extra server labels are fine; a changed or missing label of ours is not."""
    sent = [("lr", "0.010"), ("bs", "32")]
    assert disagreements(sent, [("max_epochs", "5"), ("bs", "32"), ("lr", "0.01")]) == []
    assert disagreements(sent, [("lr", "0.02"), ("bs", "32")]) == [
        "lr='0.02' there, '0.010' in this point"
    ]
    assert disagreements(sent, [("lr", "0.01")]) == ["bs missing there (sent '32')"]


def version(version_id: int, train_url: str, **params: object) -> Version:
    return Version.model_validate({
        "version_id": version_id, "version_name": f"V{version_id:04d}", "train_url": train_url,
        "parameter": [{"label": k, "value": v} for k, v in params.items()],
    })


def test_a_listing_finds_a_point_through_every_echo() -> None:
    """Numbers as JSON numbers, another order, an added label and an obs:// path: found."""
    listing = Listing.build(0.0, [version(7, "obs://b/out/k1", bs=32, lr=0.01, preset="x")])
    found = listing.find_version(identity("/b/out/k1/", [("lr", "0.010"), ("bs", "32")]))
    assert found is not None and found.version_id == 7
    assert listing.find_version(identity("/b/out/k2/", [("lr", "0.010")])) is None


def test_of_two_versions_of_a_point_the_oldest_is_adopted() -> None:
    """Duplicates made before this run: the oldest confirming version is the point's."""
    listing = Listing.build(0.0, [version(9, "/b/k1/", lr="1"), version(8, "/b/k1", lr="1.0")])
    found = listing.find_version(identity("/b/k1/", [("lr", "1")]))
    assert found is not None and found.version_id == 8


def test_a_foreign_version_on_the_train_url_is_a_conflict_naming_it() -> None:
    """Same train_url, other parameters: IdentityConflictError naming the version and the
    difference, never a silent adoption."""
    listing = Listing.build(0.0, [version(12, "/b/out/k1/", lr="0.5")])
    with pytest.raises(IdentityConflictError) as caught:
        listing.find_version(identity("/b/out/k1/", [("lr", "0.01")]))
    error = caught.value
    assert error.error_code == "batchsubmit.identity_conflict"
    assert "version 12 (V0012)" in str(error)
    assert "lr='0.5' there, '0.01' in this point" in str(error)
