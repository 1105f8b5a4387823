"""The HTML report: data taken out of the ledger (pure), the SVG pieces, the page of a real
emulator run, and ``batchsubmit report``."""

from __future__ import annotations

import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import structlog

from batchsubmit import ledger
from batchsubmit.auth import NoCredentials
from batchsubmit.cli import main
from batchsubmit.client import ModelArtsClient
from batchsubmit.commands.run import RunOptions, run_sweep
from batchsubmit.emulator import EmulatorConfig, run_emulator
from batchsubmit.ledger import encode, fold
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.report import extract, render_html, write_report
from batchsubmit.report import svg as s
from batchsubmit.report.charts import (
    MAX_FACETS,
    STATE_COLORS,
    distinct_labels,
    duration_legend,
    duration_range,
    duration_ticks,
    heatmap,
    timeline_chart,
)
from batchsubmit.report.data import (
    COMPLETED,
    CREATED,
    NOT_STARTED,
    RUNNING,
    SUBMIT_FAILED,
    TRAIN_FAILED,
    UNKNOWN,
    PointView,
    grid,
    histogram,
    nice_step,
    points,
    timeline,
)
from batchsubmit.watch import watch_ledger
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

PROJECT = "0123456789abcdef0123456789abcdef"
JOB = 10


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """`main` configures structlog to the captured stderr of a test: undo that afterwards."""
    yield
    structlog.reset_defaults()


def at(seconds: float, day: int = 26) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"2026-11-{day}T10:{int(minutes):02d}:{secs:06.3f}Z"


def start(total: int = 4, ts: str = at(0)) -> dict[str, Any]:
    settings = {"endpoint": "http://127.0.0.1:1", "project_id": PROJECT, "job_id": JOB}
    return ledger.run_started(sweep="r", spec_sha256="ab", total=total, settings=settings, ts=ts)


def sent(key: str, ts: str = at(0), attempt: int = 1, index: int = 0) -> dict[str, Any]:
    return ledger.submitted(key=key, index=index, attempt=attempt, train_url="u", ts=ts)


def ok(
    key: str, params: list[tuple[str, str]], version_id: int = 21, ts: str = at(1),
    index: int = 0, latency: float | None = 50.0,
) -> dict[str, Any]:  # fmt: skip
    return ledger.succeeded(
        key=key, index=index, version_id=version_id, version_name="V", parameter=params,
        train_url="u", attempts=1, reconciled=False, latency_ms=latency, ts=ts,
    )  # fmt: skip


def bad(key: str, ts: str = at(1), message: str = "quota", index: int = 0) -> dict[str, Any]:
    return ledger.failed(
        key=key, index=index, error_code="ModelArts.0118", error_message=message,
        http_status=400, request_id=None, attempts=1, ts=ts,
    )  # fmt: skip


def seen(key: str, version_id: int, status: int, name: str) -> dict[str, Any]:
    return ledger.status(
        key=key, version_id=version_id, status=status, status_name=name, duration_ms=60_000,
        ts=at(50),
    )  # fmt: skip


def lines(*records: dict[str, Any]) -> list[bytes]:
    return [encode(r) for r in records]


def view(key: str, params: dict[str, str], state: str = COMPLETED, index: int = 0) -> PointView:
    return PointView(key, index, tuple(params.items()), state)


# --- small pure pieces ---------------------------------------------------------------------------


def test_nice_steps_and_ticks_are_round_numbers() -> None:
    """Steps are 1, 2, 2.5 or 5 x 10^k; ticks cover the range; count axes tick whole numbers."""
    assert [nice_step(x) for x in (0.07, 0.3, 1.0, 1.2, 2.2, 3.0, 7.0, 130.0)] == [
        0.1, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 200.0,
    ]  # fmt: skip
    assert s.ticks(0, 10, 5) == [0, 2, 4, 6, 8, 10]
    assert s.rounded(26.0, 4) == (30.0, [0.0, 10.0, 20.0, 30.0])
    assert s.rounded(9.0, 4, whole=True) == (10.0, [0.0, 5.0, 10.0])
    assert s.rounded(0.0) == (1.0, [0.0, 1.0])


def test_svg_elements_escape_their_attributes_and_text() -> None:
    """Attribute values and text are escaped; class_ is class, text_anchor is text-anchor."""
    markup = s.text(1, 2.5, '<b>"x" & y</b>', class_="tick", title=None)
    assert markup == (
        '<text x="1" y="2.5" text-anchor="start" class="tick">'
        "&lt;b&gt;&quot;x&quot; &amp; y&lt;/b&gt;</text>"
    )
    cell = s.cell(0, 0, 5, 5, "#fff", 'a"><script>')
    assert "<script>" not in cell and ET.fromstring(cell).find("title") is not None


def test_long_tick_labels_lose_what_they_share() -> None:
    """Long values show the part that differs, with a note of the shared rest; short ones stay."""
    values = [f"dataset-version-{i}-long-name" for i in (1, 2, 10)]
    assert distinct_labels(values) == (["1", "2", "10"], "dataset-version-…-long-name")
    assert distinct_labels(["0.001", "0.002"]) == (["0.001", "0.002"], "")
    shown, note = distinct_labels(["x" * 20 + "a", "y" * 20 + "b"])
    assert note == "" and all(len(label) == 14 and label.endswith("…") for label in shown)


def test_the_timeline_lays_runs_end_to_end_and_counts_retries_and_failures() -> None:
    """A run resumed a day later starts where the first ended; its start is marked."""
    first = ([0.0, 0.1, 0.2, 0.6], [1.2], [1.5])  # first attempts, retries, failures (epoch s)
    day = 86_400.0
    second: tuple[list[float], list[float], list[float]] = ([day, day + 0.1], [], [day + 2.0])
    t = timeline([first, second], bars=120)
    assert t.bucket_s == 0.5
    assert sum(t.first) == 6 and sum(t.retries) == 1 and sum(t.failures) == 2
    assert t.run_starts == (1.5,)
    assert t.seconds < 5  # no day-long gap
    assert t.first[0] == 3 and t.first[1] == 1 and t.retries[2] == 1
    assert t.peak_rate == 6.0


def test_the_latency_histogram_bins_and_takes_nearest_rank_percentiles() -> None:
    """Bins of a round width from 0 hold every value; p50/p95/p99 are nearest-rank."""
    h = histogram(float(v) for v in range(1, 101))
    assert h is not None
    assert sum(h.counts) == h.n == 100 and h.edges[0] == 0
    assert (h.p50, h.p95, h.p99, h.max) == (50.0, 95.0, 99.0, 100.0)
    assert len(h.counts) <= 30 + 1
    assert histogram([]) is None


def test_two_varying_parameters_make_rows_and_columns_in_numeric_order() -> None:
    """Rows are the first varying label, columns the second; numbers sort as numbers."""
    views = [
        view(f"k{i}", {"epochs": "90", "lr": lr, "bs": bs}, index=i)
        for i, (lr, bs) in enumerate((lr, bs) for lr in ("0.1", "0.01") for bs in ("64", "8"))
    ]
    g = grid(views)
    assert (g.row_label, g.col_label) == ("lr", "bs")
    assert g.rows == ("0.01", "0.1") and g.cols == ("8", "64")
    assert len(g.cells) == 4 and not g.unplaced and g.other_labels == ()
    assert {(r, c): p.key for r, c, p in g.cells} == {
        (1, 1): "k0", (1, 0): "k1", (0, 1): "k2", (0, 0): "k3",
    }  # fmt: skip


def test_more_varying_parameters_share_cells_and_fewer_make_a_row_or_a_block() -> None:
    """A third varying label shares cells; one label is one row (natural order); none, a block."""
    three = grid([
        view(f"k{a}{b}{c}", {"a": a, "b": b, "c": c})
        for a in "xy" for b in "uv" for c in "pq"
    ])  # fmt: skip
    assert len(three.cells) == 8 and three.other_labels == ("c",)
    assert len({(r, c) for r, c, _ in three.cells}) == 4
    assert three.facets == ("c=p", "c=q")
    assert [dict(p.parameter)["c"] for _, _, p in three.cells] == ["p", "q"] * 4
    assert three.facet_of == (0, 1) * 4 and len(three.facet(1).cells) == 4
    one = grid([view(f"k{v}", {"a": v, "fixed": "1"}) for v in ("v10", "v2", "b")])
    assert (one.row_label, one.col_label, one.rows) == (None, "a", ("",))
    assert one.cols == ("b", "v2", "v10")  # natural order: digits compare as numbers
    none = grid([view(f"k{i}", {"fixed": "1"}, index=i) for i in range(5)])
    assert (none.row_label, none.col_label) == (None, None)
    assert len(none.cells) == 5 and len(none.cols) == 3


def test_a_sweep_of_many_jobs_lays_its_jobs_out_as_a_label() -> None:
    """Keys "<job>:<key>" give each point its job: re-versioning three jobs is a row of three."""
    settings = {"endpoint": "e", "project_id": PROJECT, "job_id": 10, "job_ids": [10, 11, 12]}
    run = ledger.run_started(sweep="r", spec_sha256="ab", total=3, settings=settings, ts=at(0))
    p = [("epochs", "20")]
    state = fold(lines(run, ok("10:k", p, 21), ok("11:k", p, 31), bad("12:k")))
    g = grid(points(state))
    assert (g.row_label, g.col_label, g.cols) == (None, "job", ("10", "11", "12"))
    assert len(g.cells) == 3 and not g.unplaced  # the failed one too: its job is all that varies
    spec = [("k", 0, (("epochs", "20"),)), ("new", 1, (("epochs", "20"),))]
    unstarted = {v.key for v in points(state, spec) if v.state == NOT_STARTED}
    assert unstarted == {"10:new", "11:new", "12:new"}


def test_points_are_classified_by_outcome_and_training_status() -> None:
    """completed, training failed, running, created, submit failed, unknown; spec adds unstarted."""
    p = [("lr", "1")]
    state = fold(lines(
        start(total=7), ok("a", p, 21), ok("b", p, 22), ok("c", p, 23), ok("d", p, 24),
        bad("e"), sent("f"), seen("a", 21, 10, "COMPLETED"), seen("b", 22, 11, "FAILED"),
        seen("c", 23, 8, "RUNNING"),
    ))  # fmt: skip
    states = {v.key: v.state for v in points(state)}
    assert states == {
        "a": COMPLETED, "b": TRAIN_FAILED, "c": RUNNING, "d": CREATED, "e": SUBMIT_FAILED,
        "f": UNKNOWN,
    }  # fmt: skip
    spec = [("e", 4, (("lr", "9"),)), ("g", 6, (("lr", "7"),))]
    with_spec = {v.key: v for v in points(state, spec)}
    assert with_spec["g"].state == NOT_STARTED and with_spec["e"].parameter == (("lr", "9"),)
    assert with_spec["e"].error_code == "ModelArts.0118"


def test_everything_from_the_ledger_is_escaped() -> None:
    """Parameter values, messages and codes from the ledger never become markup."""
    evil = "<script>alert(1)</script>"
    records = [
        start(), ok("a", [("opt", evil), ("lr", "1")]), ok("b", [("opt", "x"), ("lr", "2")]),
        bad("c", message='<img src=x onerror="alert(2)">'),
    ]  # fmt: skip
    page = render_html(extract(lines(*records), path="<b>.jsonl"), generated_at="now")
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page
    for picture in re.findall(r"<svg\b.*?</svg>", page, flags=re.S):
        ET.fromstring(picture)


def test_a_ledger_with_no_point_still_renders_every_section() -> None:
    """An empty ledger, or a run that sent nothing: every section says so, nothing breaks."""
    for records in ([], [start(total=3)]):
        page = render_html(extract(lines(*records)), generated_at="now")
        for name in ("headline", "timeline", "latency", "grid", "failures", "training"):
            assert f'<section id="{name}">' in page
        assert "No point is recorded" in page and "No request is recorded" in page


# --- what a reader sees: facets, the duration scale, failures, times, the file's mode ----------


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(p) for p in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def texts(picture: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in picture.iter("text")]


def test_a_third_swept_label_gets_one_titled_map_per_value() -> None:
    """lr x bs x opt: two maps of lr x bs, titled opt=adam and opt=sgd, one point per cell."""
    records = [start(total=8)] + [
        ok(f"k{i}", [("lr", lr), ("bs", bs), ("opt", opt)], index=i)
        for i, (lr, bs, opt) in enumerate(
            (lr, bs, opt) for lr in ("0.1", "0.01") for bs in ("8", "64") for opt in ("sgd", "adam")
        )
    ]  # fmt: skip
    grid_part = section(render_html(extract(lines(*records)), generated_at="now"), "grid")
    maps = svgs(grid_part)
    assert len(maps) == 2
    assert [texts(m)[0] for m in maps] == ["opt=adam", "opt=sgd"]
    for picture, opt in zip(maps, ("adam", "sgd"), strict=True):
        tips = [
            r.findtext("title") or "" for r in picture.iter("rect") if r.get("class") == "point"
        ]
        assert len(tips) == 4 and all(f"opt={opt}" in tip for tip in tips)
    assert "opt also varies: one map per value" in grid_part


def test_past_max_facets_each_cell_has_a_fixed_stripe_per_combination() -> None:
    """Too many combinations for a map each: a stripe per combination, in the same place in
    every cell (a missing point leaves its stripe empty), the order named under the map."""
    combos = [(str(a), str(b)) for a in range(4) for b in range(5)]  # 20 > MAX_FACETS
    assert len(combos) > MAX_FACETS
    views = [
        view(f"k{r}{c}{a}{b}", {"r": r, "c": c, "a": a, "b": b})
        for r in "xy" for c in "uv" for a, b in combos
        if (r, c, a, b) != ("x", "u", "0", "0")  # one cell lacks its first combination
    ]  # fmt: skip
    g = grid(views)
    picture = ET.fromstring(heatmap(g, lambda p: "#000", label="t"))
    at_x: dict[tuple[str, str], set[str]] = {}  # (column, combination) -> x of its stripes
    for rect in picture.iter("rect"):
        params = (rect.findtext("title") or "").split(" | ")[1]
        p = dict(pair.split("=") for pair in params.split(", "))
        at_x.setdefault((p["c"], p["a"] + p["b"]), set()).add(rect.get("x", ""))
    assert len(at_x) == 2 * len(combos)
    assert all(len(xs) == 1 for xs in at_x.values())  # row x, column u lines up with row y
    order = [float(next(iter(at_x["u", a + b]))) for a, b in combos]
    assert order == sorted(order)  # left to right in the facets' order
    page = render_html(extract(lines(start(), *(
        ok(v.key, list(v.parameter), index=i) for i, v in enumerate(views)
    ))), generated_at="now")  # fmt: skip
    grid_part = section(page, "grid")
    assert len(svgs(grid_part)) == 1
    assert "a, b also vary: each cell holds up to 20 points" in grid_part
    assert "<figcaption>Each cell, left to right: a=0, b=0; a=0, b=1;" in grid_part


def test_a_flat_duration_range_shows_one_value_and_others_distinct_ticks() -> None:
    """Every point ran 10 s: one swatch, one label, not "10 s 10 s 10 s"; ticks never repeat."""
    flat = texts(ET.fromstring(duration_legend(10_000.0, 10_000.0)))
    assert len(flat) == 1 and flat[0].startswith("10.0s")
    assert duration_range([10_000.0, 10_020.0]) == (10_000.0, 10_000.0)  # they read the same
    for low, high in ((10_000.0, 10_100.0), (59_000.0, 61_000.0), (60_000.0, 7_200_000.0)):
        shown = texts(ET.fromstring(duration_legend(low, high)))
        assert len(shown) == len(set(shown)) >= 2
        assert [text for _, text in duration_ticks(low, high)] == shown
    assert texts(ET.fromstring(duration_legend(60_000.0, 180_000.0))) == ["1m 0s", "2m 0s", "3m 0s"]


def test_a_flat_duration_legend_in_the_page_has_one_label() -> None:
    """A page whose watched versions all ran 60 s shows one duration, once."""
    p = [("lr", "1")]
    records = [start(), ok("a", p, 21), ok("b", [("lr", "2")], 22), seen("a", 21, 10, "COMPLETED"),
               seen("b", 22, 10, "COMPLETED")]  # fmt: skip
    scale = [m for m in svgs(render_html(extract(lines(*records)), generated_at="now"))
             if m.get("aria-label") == "training duration colour scale"]  # fmt: skip
    assert len(scale) == 1 and len(texts(scale[0])) == 1 and texts(scale[0])[0].startswith("1m 0s")


def test_failed_points_are_a_row_of_their_own_under_the_requests() -> None:
    """Failures are not stacked on the sends: their own group, below the requests' baseline;
    the requests' axis tops at the peak send rate."""
    t = timeline([([0.0, 0.1, 0.2, 0.3], [0.4], [0.2, 0.3, 0.35])], bars=120)
    picture = ET.fromstring(timeline_chart(t))
    groups = {g.get("class"): list(g.iter("rect")) for g in picture.iter("g")
              if (g.get("class") or "").startswith("series-")}  # fmt: skip
    assert set(groups) == {"series-first", "series-retries", "series-failures"}
    sends = groups["series-first"] + groups["series-retries"]
    lowest_send = max(float(r.get("y", 0)) + float(r.get("height", 0)) for r in sends)
    assert groups["series-failures"]
    assert all(float(r.get("y", 0)) > lowest_send for r in groups["series-failures"])
    assert sum(int((r.findtext("title") or "0").split()[0]) for r in groups["series-failures"]) == 3
    left_ticks = [float(v) for v in texts(picture) if re.fullmatch(r"\d+(\.\d+)?", v)]
    assert max(left_ticks) == 10.0  # 5 sends in 0.5 s: 10/s; the failures would have made 16


class _Text(HTMLParser):
    """The text a reader sees: data outside tags (attributes left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle_data(self, data: str) -> None:
        self.seen.append(data)


def test_timestamps_read_as_utc_times_with_the_iso_form_in_a_title() -> None:
    """No raw ISO timestamp in the page's text: "2026-11-26 10:00:00 UTC", the ISO as title."""
    records = [start(), sent("a"), ok("a", [("lr", "1")], 21, ts=at(5)), seen("a", 21, 10, "C")]
    page = render_html(extract(lines(*records)), generated_at="2026-11-27T08:01:02.345Z")
    reader = _Text()
    reader.feed(page)
    shown = "".join(reader.seen)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", shown)
    assert '<time datetime="2026-11-26T10:00:00.000Z" title="2026-11-26T10:00:00.000Z">' in page
    assert "from 2026-11-26 10:00:00 UTC to 10:00:05 UTC" in shown  # the same day: the time
    assert "generated 2026-11-27 08:01:02 UTC" in shown


def test_the_report_file_is_0600_like_the_ledger_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under umask 022 (or 0), over an existing 0644 file: the temporary and the page are 0600."""
    path = tmp_path / "r.ledger.jsonl"
    path.write_bytes(b"".join(lines(start(total=1), sent("a"), ok("a", [("lr", "1")]))))
    out = tmp_path / "r.html"
    out.write_text("old")
    out.chmod(0o644)
    modes: list[int] = []
    replace = os.replace

    def spy(src: str, dst: str | os.PathLike[str]) -> None:
        modes.append(stat.S_IMODE(os.stat(src).st_mode))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    for umask in (0o022, 0o000):
        previous = os.umask(umask)
        try:
            write_report(path, out)
        finally:
            os.umask(previous)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert modes == [0o600, 0o600]
    assert {p.name for p in tmp_path.iterdir()} == {"r.ledger.jsonl", "r.html"}  # no temporary


# --- the report of a real emulator run -----------------------------------------------------------


def write_spec(path: Path) -> Path:
    """5 learning rates x 6 batch sizes against job 10, with a fixed parameter too."""
    spec = {
        "name": "reported",
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_id": JOB},
        "base": {
            "config": {
                "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
                "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
                "train_url": "/bkt/out/{sweep}/{key}/",
                "parameter": [{"label": "epochs", "value": "90"}],
            },
        },
        "grid": {"lr": [0.1, 0.03, 0.01, 0.003, 0.001], "bs": [8, 16, 32, 64, 128, 256]},
    }  # fmt: skip
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture
async def watched_run(tmp_path: Path) -> tuple[Path, Path]:
    """30 points, 24 created (the job's quota is 25 versions), then watched to the end."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(
        project_id=PROJECT, max_versions_per_job=25, init_seconds=1, run_seconds=2,
        failure_share=0.25, seed=11,
    )  # fmt: skip
    spec, path = write_spec(tmp_path / "s.json"), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config, clock=clock) as emu:
        options = RunOptions(spec=spec, endpoint=emu.url, ledger=path, rate=500, quiet=True)
        await run_sweep(options, credentials=NoCredentials(project_id=PROJECT))
        async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
            await watch_ledger(
                path, client=client, interval=1.0, clock=clock, sleep=clock.sleep,
                limiter=AdaptiveRateLimiter(100, clock=clock, sleep=clock.sleep),
            )  # fmt: skip
    return spec, path


def section(page: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', page, flags=re.S)
    assert match is not None, f"no section {name}"
    return match.group(1)


def card(page: str, name: str) -> str:
    match = re.search(
        rf'<div class="value">([^<]*)</div><div class="name">{re.escape(name)}</div>', page
    )
    assert match is not None, f"no card {name}"
    return match.group(1)


async def test_the_report_of_a_watched_emulator_run(watched_run: tuple[Path, Path]) -> None:
    """Every section, the right counts, one heat-map cell per point, nothing fetched, valid SVG."""
    spec, path = watched_run
    out = path.with_suffix(".html")
    data = write_report(path, out, spec=spec, generated_at="2026-11-26T10:00:00.000Z")
    page = out.read_text(encoding="utf-8")
    state = ledger.read_ledger(path)
    training_failed = sum(e.status_name == "FAILED" for e in state.statuses.values())
    assert 0 < training_failed < 24

    for name in ("headline", "timeline", "latency", "grid", "failures", "training"):
        section(page, name)
    assert (card(page, "points"), card(page, "succeeded"), card(page, "failed")) == (
        "30", "24", "6",
    )  # fmt: skip
    assert card(page, "trainings completed") == str(24 - training_failed)
    assert card(page, "trainings failed") == str(training_failed)
    failures = section(page, "failures")
    assert re.search(r"<td>ModelArts\.0118</td><td class=\"num\">6</td>", failures)
    assert section(page, "training").count("<tr>") == training_failed + 1  # + the header
    assert data.states == {"completed": 24 - training_failed, "training failed": training_failed,
                           "submit failed": 6}  # fmt: skip

    pictures = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert len(pictures) == 5  # timeline, latency, states, duration ramp, durations
    for picture in pictures:
        ET.fromstring(picture)
    grid_pictures = re.findall(r"<svg\b.*?</svg>", section(page, "grid"), flags=re.S)
    states_map, durations_map = grid_pictures[0], grid_pictures[2]
    assert states_map.count('class="point"') == 30
    assert durations_map.count('class="point"') == 30
    assert states_map.count(f'fill="{STATE_COLORS[SUBMIT_FAILED]}"') == 6

    for forbidden in ("<script", "src=", "href=", "url(", "@import", "<link", "<iframe", "<img"):
        assert forbidden not in page.lower()


async def test_without_the_spec_failed_points_are_named_not_placed(
    watched_run: tuple[Path, Path],
) -> None:
    """The ledger has no parameters for a failed point: it is left off the grid, with a hint."""
    _, path = watched_run
    data = write_report(path, path.with_suffix(".html"))
    page = path.with_suffix(".html").read_text(encoding="utf-8")
    assert len(data.grid.cells) == 24 and len(data.grid.unplaced) == 6
    assert "6 points are not on the grid" in page and "--spec SPEC" in page


# --- batchsubmit report --------------------------------------------------------------------------


def test_report_writes_the_page_next_to_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without -o the page is LEDGER with .html for .jsonl; exit 0 and a line saying where."""
    path = tmp_path / "r.ledger.jsonl"
    path.write_bytes(b"".join(lines(start(total=1), sent("a"), ok("a", [("lr", "1")]))))
    assert main(["report", str(path)]) == 0
    assert (tmp_path / "r.ledger.html").read_text().startswith("<!DOCTYPE html>")
    assert "wrote" in capsys.readouterr().err
    assert main(["report", str(path), "-o", str(tmp_path / "x.html")]) == 0
    assert (tmp_path / "x.html").exists()


def test_report_of_a_missing_or_damaged_ledger_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing ledger, or a bad line in it, is exit 2 with the path (and line)."""
    assert main(["report", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such ledger" in capsys.readouterr().err
    damaged = tmp_path / "d.jsonl"
    damaged.write_bytes(encode(start()) + b"not json\n" + encode(sent("a")))
    assert main(["report", str(damaged)]) == 2
    assert "d.jsonl:2" in capsys.readouterr().err


def test_report_help_names_the_sections(capsys: pytest.CaptureFixture[str]) -> None:
    """``report --help`` says what the page shows and how to place failed points."""
    assert main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    for expected in ("self-contained", "heat map", "--spec", "-o"):
        assert expected in out
