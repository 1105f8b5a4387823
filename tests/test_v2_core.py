"""The v2 target's pure parts and decisions: spec compilation, preflight, the search walk, the
listing's identity rules, and the engine's answer to a taken name (a fake server, a fake clock)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsubmit import ledger as records
from batchsubmit.engine import Engine
from batchsubmit.errors import (
    IdentityConflictError,
    IncompleteListingError,
    NameTakenError,
    OutcomeUnknownError,
    SpecError,
)
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.models_v2 import JobSearchPage, TrainingJob
from batchsubmit.reconcile import Reconciler
from batchsubmit.sweep import Point, SweepSpec, iter_points, preflight
from batchsubmit.sweep.v2body import default_name
from batchsubmit.target import Created
from batchsubmit.v2 import V2Listing, walk_jobs
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SPEC: dict[str, Any] = {
    "name": "lr-v2",
    "target": {"api": "v2", "endpoint": "emulator", "project_id": "p" * 32},
    "base": {
        "kind": "job",
        "metadata": {"name": "{sweep}-{key}", "description": "lr={learning_rate}"},
        "algorithm": {
            "code_dir": "/bucket/app/",
            "boot_file": "/bucket/app/train.py",
            "engine": {"engine_id": "pytorch-cp36-1.4.0-v2"},
            "parameters": [{"name": "epochs", "value": "10"}, {"name": "learning_rate",
                                                                "value": "1"}],
            "outputs": [{"name": "train_url",
                         "remote": {"obs": {"obs_url": "/bucket/out/{sweep}/{key}/"}}}],
        },
        "spec": {"resource": {"flavor_id": "modelarts.vm.cpu.2u", "node_count": 1}},
    },
    "grid": {"learning_rate": [0.1, 0.01], "batch_size": [32, 64]},
}


def spec_with(change: Callable[[dict[str, Any]], None] | None = None) -> SweepSpec:
    data = copy.deepcopy(SPEC)
    if change is not None:
        change(data)
    return SweepSpec.from_dict(data)


def points(spec: SweepSpec | None = None) -> list[Point]:
    return list(iter_points(spec or spec_with()))


# --- compiling a v2 spec -------------------------------------------------------------------------


def test_swept_values_become_parameters_merged_by_name() -> None:
    """The base's learning_rate is replaced by the swept one (one item per name), epochs kept."""
    first = points()[0]
    assert first.body["algorithm"]["parameters"] == [
        {"name": "epochs", "value": "10"},
        {"name": "learning_rate", "value": "0.1"},
        {"name": "batch_size", "value": "32"},
    ]
    assert first.parameter == (("epochs", "10"), ("learning_rate", "0.1"), ("batch_size", "32"))
    assert first.body["metadata"] == {"name": f"lr-v2-{first.key}", "description": "lr=0.1"}
    assert first.train_url == f"/bucket/out/lr-v2/{first.key}/"
    assert preflight(spec_with()) == 4


def test_a_derived_name_is_valid_and_unique_even_for_the_longest_sweep_name() -> None:
    def no_name(data: dict[str, Any]) -> None:
        del data["base"]["metadata"]["name"]
        data["name"] = "s" * 64

    spec = spec_with(no_name)
    names = [p.body["metadata"]["name"] for p in points(spec)]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", n) for n in names), names
    assert len(set(names)) == len(names) == preflight(spec)
    assert default_name("short") == "short-{key}"
    # Two long sweep names that share their first 38 characters still derive different names.
    assert default_name("a" * 60 + "x") != default_name("a" * 60 + "y")


def test_workspace_id_goes_into_the_metadata() -> None:
    spec = spec_with(lambda d: d["target"].update(workspace_id="0"))
    assert points(spec)[0].body["metadata"]["workspace_id"] == "0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["base"]["metadata"].update(name="lr{learning_rate}"),
         "the job name renders to 'lr0.1', which is not 1 to 64 letters"),
        (lambda d: d["base"]["metadata"].update(name="{sweep}-{learning_rate}"),
         "the job name renders to 'lr-v2-0.1'"),
        (lambda d: d["base"]["metadata"].update(name="{sweep}-{batch_size}"),
         "is also the name of point #0"),
        (lambda d: d["base"]["metadata"].update(name="{sweep}-{job_id}"),
         "unknown placeholder {job_id}"),
        (lambda d: d["target"].update(job_id=3), "drop job_id / job_ids"),
        (lambda d: d["target"].update(api="v1"), "base is a v2 training-job body"),
        (lambda d: d["base"]["algorithm"].update(bootfile="x"),
         "unknown field 'bootfile' of the v2 request body: did you mean 'boot_file'?"),
        (lambda d: d["base"]["spec"]["resource"].update(flavour="x"),
         "did you mean 'flavor_id'?"),
        (lambda d: d["base"]["algorithm"]["parameters"].append({"name": "epochs", "value": 1}),
         "name 'epochs' is listed twice"),
        (lambda d: d["base"]["spec"]["resource"].pop("flavor_id"),
         "required field spec.resource.flavor_id is missing"),
        (lambda d: d["base"]["metadata"].update(workspace_id="a" * 32),
         "the workspace is target.workspace_id"),
    ],
)
def test_spec_mistakes_are_refused_before_anything_is_sent(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        preflight(spec_with(change))


def test_names_equal_but_for_case_are_refused() -> None:
    """A server that compares names without case would refuse the second: preflight does."""
    def cased(data: dict[str, Any]) -> None:
        data["base"]["metadata"]["name"] = "job-{tag}"
        data["grid"] = {"tag": ["ab", "AB"]}

    with pytest.raises(SpecError, match="equal but for case"):
        preflight(spec_with(cased))


def test_a_v1_spec_naming_api_v2_is_refused_at_the_api_key() -> None:
    data = {"name": "x", "target": {"endpoint": "emulator", "api": "v2"},
            "base": {"config": {"train_url": "/b/{key}/"}}, "grid": {"lr": [1]}}
    with pytest.raises(SpecError, match=re.escape("target.api is v2, but base is a v1 body")):
        SweepSpec.from_dict(data)


# --- the search walk ------------------------------------------------------------------------------


def job(i: int, name: str | None = None, **algorithm: Any) -> TrainingJob:
    return TrainingJob.model_validate(
        {"metadata": {"id": f"id-{i}", "name": name or f"job-{i}", "create_time": i},
         "algorithm": algorithm}
    )


def server(jobs: list[TrainingJob], *, offsets: str, served: int) -> Callable[..., Any]:
    """A search that serves ``served`` jobs a page, reading offset as a page index or a record."""
    calls: list[int] = []

    async def fetch(offset: int) -> JobSearchPage:
        calls.append(offset)
        start = offset * served if offsets == "page" else offset
        return JobSearchPage(items=jobs[start:start + served])

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 180), served=st.integers(1, 50),
       offsets=st.sampled_from(["page", "record"]))
async def test_the_walk_misses_nothing_under_either_offset_reading(
    n: int, served: int, offsets: str
) -> None:
    jobs = [job(i) for i in range(n)]
    fetch = server(jobs, offsets=offsets, served=served)
    found = await walk_jobs(fetch)
    assert [j.id for j in found] == [j.id for j in jobs]
    # Record offsets advance by the jobs seen, not one record a page: pages ~ jobs / page size.
    assert len(fetch.calls) <= -(-n // served) + 2  # type: ignore[attr-defined]


async def test_a_server_that_ignores_offset_proves_nothing() -> None:
    jobs = [job(i) for i in range(60)]

    async def fetch(offset: int) -> JobSearchPage:
        return JobSearchPage(items=jobs[:50])

    with pytest.raises(IncompleteListingError, match="does not seem to page"):
        await walk_jobs(fetch)


# --- the listing: exact names, confirmed by parameters and outputs -------------------------------


def echo(point: Point, i: int = 1, **changes: Any) -> TrainingJob:
    algorithm = point.body["algorithm"]
    body = {"parameters": algorithm["parameters"], "outputs": algorithm["outputs"], **changes}
    return job(i, point.body["metadata"]["name"], **body)


def test_a_job_of_the_points_name_is_found_in_the_echos_own_words() -> None:
    point = points()[1]  # learning_rate 0.1, batch_size 64
    reworded = [{"name": "epochs", "value": 10}, {"name": "learning_rate", "value": "0.100"},
                {"name": "batch_size", "value": 64.0}, {"name": "added_by_server", "value": "x"}]
    outputs = [{"name": "train_url", "remote": {"obs": {"obs_url": "obs:/" + point.train_url}}}]
    listing = V2Listing.build(0.0, [echo(point, parameters=reworded, outputs=outputs)])
    assert listing.find(point) == Created("id-1", point.body["metadata"]["name"],
                                          id_field="training_job_id", name_field="job_name")


def test_only_an_exact_name_counts() -> None:
    """``like`` is a containment match (maybe without case, maybe SQL wildcards): a job whose name
    merely contains the point's is not the point's."""
    point = points()[0]
    name = point.body["metadata"]["name"]
    listing = V2Listing.build(0.0, [job(1, name + "x"), job(3, "x" + name), job(4, name[:-1])])
    assert listing.find(point) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"parameters": [{"name": "epochs", "value": "10"}, {"name": "learning_rate",
                                                             "value": "0.5"}]},
        {"outputs": [{"name": "train_url", "remote": {"obs": {"obs_url": "/elsewhere/"}}}]},
    ],
)
def test_a_job_of_the_points_name_with_other_content_is_a_conflict(changes: Any) -> None:
    point = points()[0]
    listing = V2Listing.build(0.0, [echo(point, **changes)])
    with pytest.raises(IdentityConflictError, match="is not this point's"):
        listing.find(point)


def test_two_jobs_of_one_name_are_a_conflict() -> None:
    point = points()[0]
    listing = V2Listing.build(0.0, [echo(point, 1), echo(point, 2)])
    with pytest.raises(IdentityConflictError, match="2 training jobs are named"):
        listing.find(point)


# --- the engine and a taken name -----------------------------------------------------------------


class NamedServer:
    """A v2-like server in memory: names are unique; ``lose`` creates lose their reply; a job
    shows in the listing only once ``visible`` allows it."""

    def __init__(self, *, lose: int = 0, visible: Callable[[TrainingJob], bool] = lambda j: True,
                 foreign: list[TrainingJob] | None = None) -> None:
        self.jobs: list[TrainingJob] = list(foreign or [])
        self.lose = lose
        self.visible = visible
        self.creates = 0
        self.refused = 0

    async def create(self, job_id: int, point: Point) -> Created:
        self.creates += 1
        name = point.body["metadata"]["name"]
        if any(j.name == name for j in self.jobs):
            self.refused += 1
            raise NameTakenError(f"Duplicate training job (name {name}).", http_status=400,
                                 error_code="ModelArts.2751")
        made = echo(point, len(self.jobs) + 1)
        self.jobs.append(made)
        if self.lose:
            self.lose -= 1
            raise OutcomeUnknownError("POST training-jobs: connection reset after sending")
        return Created(made.id, made.name, id_field="training_job_id", name_field="job_name")

    async def listing(self, started_at: float) -> V2Listing:
        return V2Listing.build(started_at, [j for j in self.jobs if self.visible(j)])


class Recorder:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def write(self, record: dict[str, Any]) -> None:
        records.check_record(record)  # every line is a valid ledger record
        self.records.append(record)

    def last(self, event: str) -> dict[str, Any]:
        return [r for r in self.records if r["event"] == event][-1]


async def submit_one(server: NamedServer, point: Point, attempts: int = 0) -> Engine:
    clock = FakeClock()
    ledger = Recorder()
    engine = Engine(
        api=server, ledger=ledger,
        limiter=AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep),
        reconcilers={0: Reconciler(server.listing, settle=1.0, clock=clock, sleep=clock.sleep)},
        clock=clock, sleep=clock.sleep,
    )
    engine.ledger_records = ledger  # type: ignore[attr-defined]
    await engine.submit(0, point, attempts)
    return engine


async def test_a_taken_name_after_our_own_lost_create_adopts_the_job_by_name() -> None:
    """The reply is lost and the search lags: absent twice, so the point is resent; the 2751
    that answers says the first create landed, and the job found by name is adopted."""
    shown: set[str] = set()
    server = NamedServer(lose=1, visible=lambda j: j.id in shown)
    original = server.create

    async def create(job_id: int, point: Point) -> Created:
        try:
            return await original(job_id, point)
        except NameTakenError:
            shown.update(j.id for j in server.jobs)  # the search catches up
            raise

    server.create = create  # type: ignore[method-assign]
    point = points()[0]
    engine = await submit_one(server, point)
    ledger = engine.ledger_records  # type: ignore[attr-defined]
    assert (server.creates, server.refused, len(server.jobs)) == (2, 1, 1)
    done = ledger.last("succeeded")
    assert done["training_job_id"] == server.jobs[0].id and done["reconciled"] is True
    assert done["job_name"] == point.body["metadata"]["name"] and done["attempts"] == 2


async def test_a_taken_name_not_yet_listed_leaves_the_point_pending() -> None:
    """When the job of the taken name cannot be seen, the point stays pending: never a third
    create, never a guess."""
    server = NamedServer(lose=1, visible=lambda j: False)
    engine = await submit_one(server, points()[0])
    ledger = engine.ledger_records  # type: ignore[attr-defined]
    assert (server.creates, len(server.jobs), engine.stats.unresolved) == (2, 1, 1)
    assert [r["event"] for r in ledger.records] == ["submitted", "submitted"]


async def test_a_taken_name_on_a_first_send_is_someone_elses_job() -> None:
    """A name this ledger never sent, held by a job the start listing did not show (it lags):
    the point fails as an identity conflict and nothing is adopted or created."""
    point = points()[0]
    foreign = echo(point, 99)
    server = NamedServer(foreign=[foreign], visible=lambda j: False)
    engine = await submit_one(server, point)
    ledger = engine.ledger_records  # type: ignore[attr-defined]
    failed = ledger.last("failed")
    assert failed["error_code"] == "batchsubmit.identity_conflict"
    assert "no earlier attempt of this ledger can have created it" in failed["error_message"]
    assert (server.creates, len(server.jobs)) == (1, 1)


async def test_a_taken_name_on_a_resend_whose_job_is_not_ours_is_a_conflict() -> None:
    """Our earlier attempt's outcome is unknown, but the job of that name has other
    parameters: not adopted."""
    point = points()[0]
    other = echo(point, 99, parameters=[{"name": "learning_rate", "value": "7"}])
    server = NamedServer(foreign=[other])
    engine = await submit_one(server, point, attempts=1)  # an intent from an earlier run
    failed = engine.ledger_records.last("failed")  # type: ignore[attr-defined]
    assert failed["error_code"] == "batchsubmit.identity_conflict"
    assert server.creates == 1 and len(server.jobs) == 1


async def test_after_a_lost_ledger_a_retry_adopts_the_job_once_it_is_listed() -> None:
    """A lost ledger and a lagging search: the first send meets our own job's name and fails as
    a conflict (nothing says it is ours); the run the message advises (--retry-failed, once the
    search lists the job) adopts it from the start listing, sending nothing."""
    point = points()[0]
    listed = False
    server = NamedServer(foreign=[echo(point, 7)], visible=lambda j: listed)
    engine = await submit_one(server, point)
    assert "--retry-failed" in engine.ledger_records.last("failed")["error_message"]  # type: ignore[attr-defined]
    listed = True
    clock = FakeClock()
    ledger = Recorder()
    retry = Engine(
        api=server, ledger=ledger,
        limiter=AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep),
        reconcilers={0: Reconciler(server.listing, settle=1.0, clock=clock, sleep=clock.sleep)},
        clock=clock, sleep=clock.sleep,
    )
    await retry.run([(0, point, 1)], on_server={0: await server.listing(clock.now)})
    assert ledger.last("succeeded")["training_job_id"] == "id-7"
    assert server.creates == 1  # the first run's refused send; the retry sent nothing


# --- what a v2 answer means (the client's classification) ---------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "api", "kind", "disposition"),
    [
        (503, "ModelArts.4503", "v2", "ServerError", "RECONCILE"),  # backend timeout: may exist
        (503, "ModelArts.4503", "v1", "ServerError", "RETRY"),
        (400, "ModelArts.2751", "v2", "NameTakenError", "FAIL"),
        (400, "ModelArts.2751", "v1", "APIError", "FAIL"),
        (400, "ModelArts.2815", "v2", "QuotaExceededError", "FAIL"),
        (400, "ModelArts.2815", "v1", "APIError", "FAIL"),  # v1: the point fails, as before
    ],
)
def test_v2_codes_mean_what_the_v2_contract_says_and_v1_is_unchanged(
    status: int, code: str, api: str, kind: str, disposition: str
) -> None:
    from batchsubmit.client import classify_error

    error = classify_error(status, {"error_code": code, "error_msg": "x"}, {},
                           may_have_created=True, api=api)
    assert (type(error).__name__, error.disposition.name) == (kind, disposition)


def test_a_job_whose_name_differs_only_in_case_is_a_conflict_not_a_silent_miss() -> None:
    """A server comparing names without case would answer the point's create with 2751 for
    that job, which the exact-name lookup never finds: the point would stay pending for ever.
    It fails as a conflict instead, naming the job; an exact match still wins."""
    point = points()[0]
    name = point.body["metadata"]["name"]
    with pytest.raises(IdentityConflictError, match="only in case"):
        V2Listing.build(0.0, [job(2, name.upper())]).find(point)
    assert V2Listing.build(0.0, [job(2, name.upper()), echo(point, 3)]).find(point) is not None


class FlakySearch:
    """A client whose searches fail with the given errors first, then answer."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def search_training_jobs(self, query: dict[str, Any]) -> JobSearchPage:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return JobSearchPage(items=[job(1)])


async def test_a_failed_search_page_is_asked_again_alone_but_a_throttle_is_the_pacings() -> None:
    """A 5xx or a timeout on one page retries that page (a long walk would otherwise seldom
    finish under occasional 5xx); a 429 goes back to the pacing, a refused credential ends it."""
    from batchsubmit.errors import AuthError, ServerError, ThrottledError
    from batchsubmit.retry import Backoff
    from batchsubmit.v2 import V2Target

    def target(client: FlakySearch) -> V2Target:
        made = V2Target(client, name_prefix="lr-v2-")  # type: ignore[arg-type]
        made._backoff = Backoff(base=0.001)
        return made

    flaky = FlakySearch(ServerError("x", http_status=500), OutcomeUnknownError("reset"))
    assert [j.id for j in (await target(flaky).page(0)).items] == ["id-1"]
    assert flaky.calls == 3
    for error in (ThrottledError("slow down"), AuthError("no", http_status=401)):
        once = FlakySearch(error)
        with pytest.raises(type(error)):
            await target(once).page(0)
        assert once.calls == 1
