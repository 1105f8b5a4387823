"""``batchsubmit expand SPEC``: show what a sweep spec would send, without sending anything."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchsubmit import bounds
from batchsubmit.commands import silence_stdout
from batchsubmit.errors import SpecError, UsageError

if TYPE_CHECKING:  # the sweep package (pydantic, PyYAML) is imported when the command runs
    from batchsubmit.sweep import SweepSpec

DESCRIPTION = """\
Expand a sweep spec into its points and check every one, without touching the network
(--endpoint aside, which only reads).

Each point is one create-version request: the spec's base body with the point's values added to
config.parameter and {placeholders} filled in (target.api v2: one create-training-job request,
the values added to algorithm.parameters, named by metadata.name). Every body is rendered and
validated against the API's rules first (preflight), so a spec that passes here sends nothing
invalid. Exit status 0
when the spec is valid, 2 with a message naming the file, line, field and point when it is not.

A spec with base.from_version takes each job's base body from the server. Without the server,
expand shows the spec's own (partial) body, each field checked; --endpoint URL fetches the
version a run would build on (reads only: the listing, one detail) and shows the merged body, and
--from-file VERSION.json (a saved version detail) previews it offline. With several
target.job_ids, every job gets the same points: expand shows the first job (or --job-id N) and
counts them all.
"""

EPILOG = """\
examples:
  batchsubmit expand sweeps/quickstart.yaml
      the points as a table, the total, and the time to submit them at the spec's submit.rate
  batchsubmit expand sweeps/lr-batch-grid.yaml --count
      just the number of points, computed without expanding
  batchsubmit expand big.toml --limit 5 --rate 2
      the first 5 points, and how long sending all of them takes at 2 requests/s
  batchsubmit expand sweeps/random-search.yaml --json | jq -c .config.parameter
      one full request body per line (JSON Lines), for other tools
  batchsubmit expand sweeps/reversion-jobs.yaml --from-file sweeps/versions/job-10.json
      the bodies job 10 gets on top of a saved version detail (base.from_version specs)
  batchsubmit expand sweeps/reversion-jobs.yaml --endpoint https://modelarts.<region>.myhuaweicloud.com
      the same, on the version the server has now (credentials as for `run`)
"""

DEFAULT_ROWS = 50


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``expand`` subcommand."""
    parser = subparsers.add_parser(
        "expand",
        help="show and check the points of a sweep spec (no network unless --endpoint)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", metavar="SPEC", help="sweep spec file: .yaml, .yml, .json or .toml")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--count",
        action="store_true",
        help="print only the number of points, computed without expanding (fast; renders and "
        "validates nothing beyond the first point)",
    )
    mode.add_argument(
        "--json",
        action="store_true",
        help="print one full request body per line (JSON Lines) instead of the table, the "
        'point\'s "index" and "key" added in front (jq -c \'del(.index, .key)\' leaves the body)',
    )
    parser.add_argument(
        "--limit",
        type=bounds.LIMIT.parser(),
        metavar="N",
        help=f"show at most N points (default: all with --json, {DEFAULT_ROWS} in the table); "
        "every point is still checked",
    )
    parser.add_argument(
        "--job-id",
        type=bounds.JOB_ID.parser(),
        metavar="N",
        help="show the sweep of job N ({job_id} renders N; default: target.job_id, the first "
        "of target.job_ids, or the job_id of --from-file)",
    )
    base = parser.add_mutually_exclusive_group()
    base.add_argument(
        "--from-file",
        metavar="VERSION.json",
        help="a saved version detail (the JSON of GET .../training-jobs/{job_id}/versions/"
        "{version_id}): preview a base.from_version spec's bodies merged on it, offline",
    )
    base.add_argument(
        "--endpoint",
        metavar="URL",
        help="fetch the version a base.from_version spec builds on from this endpoint (a "
        "ModelArts region, or a running `batchsubmit emulator`) and preview the merged bodies; "
        "reads only, with the credentials `run` uses (HUAWEICLOUD_SDK_AK/SK or MODELARTS_TOKEN)",
    )
    parser.add_argument(
        "--project-id",
        metavar="ID",
        help="with --endpoint: the project id (default: target.project_id, then "
        "HUAWEICLOUD_SDK_PROJECT_ID)",
    )
    parser.add_argument(
        "--rate",
        type=bounds.RATE.parser(),
        metavar="R",
        help="requests per second for the expected submission time (default: submit.rate of "
        "the spec)",
    )
    parser.set_defaults(func=run)


def duration(seconds: float) -> str:
    """``7260`` -> ``"2h 1m 0s"``: a submission-time estimate, rounded up to whole seconds."""
    from batchsubmit.summary import format_duration

    return format_duration(seconds, estimate=True)


def read_version(path: str) -> dict[str, Any]:
    """A saved version detail (JSON object); SpecError naming the file if it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as exc:
        reason = exc.strerror or exc
        raise SpecError(f"cannot read the version detail: {reason}", path=path) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise SpecError(f"not a JSON version detail: {exc}", path=path, line=line) from exc
    if not isinstance(data, dict) or "version_id" not in data:
        raise SpecError(
            "not a version detail: expected a JSON object with version_id, as "
            "GET .../training-jobs/{job_id}/versions/{version_id} returns",
            path=path,
        )
    return data


def _detail_job(version: dict[str, Any]) -> int | None:
    job = version.get("job_id")
    if isinstance(job, str) and job.strip().isdigit():
        job = int(job)
    return job if isinstance(job, int) and not isinstance(job, bool) and job >= 1 else None


def _v1_flags_only(spec: SweepSpec, args: argparse.Namespace) -> None:
    if spec.target.api == "v2" and args.job_id:
        raise UsageError(
            "--job-id names a v1 training job, but this spec is api: v2 (a training job per "
            "point, in no existing job): drop --job-id"
        )


def prepare(spec: SweepSpec, args: argparse.Namespace) -> tuple[SweepSpec, int, list[str]]:
    """The spec to show (bound to one job, rebased on --from-file), the number of jobs its
    points are sent to, and notes for the reader."""
    from batchsubmit.sweep import bind, rebase

    jobs = spec.target.job_ids
    notes: list[str] = []
    _v1_flags_only(spec, args)
    if args.project_id and not args.endpoint:
        raise UsageError("--project-id goes with --endpoint (expand reads the server only then)")
    option = "--from-file" if args.from_file else "--endpoint" if args.endpoint else None
    if option and spec.from_version is None:
        raise UsageError(
            f"{option} previews the merge of a base.from_version spec; {spec.path} has no "
            "from_version (its base.config is the whole body)"
        )
    count = 1 if args.job_id else max(1, len(jobs))
    if spec.from_version is not None and args.from_file:
        version = read_version(args.from_file)
        job = args.job_id or _detail_job(version) or (jobs[0] if jobs else None)
        if job is None:
            raise UsageError(
                f"no job for the preview: {args.from_file} has no job_id and the spec no "
                "target.job_ids; pass --job-id N"
            )
        spec = rebase(spec, job, version)
        notes.append(
            f"job {job}: base.config merged on top of version {spec.rebased_on} read from "
            f"{args.from_file} (base.from_version: {spec.from_version}); the server's version "
            "may differ"
        )
    elif spec.from_version is not None and args.endpoint:
        job = args.job_id or (jobs[0] if jobs else None)
        if job is None:
            raise UsageError("no job for the preview: the spec names none; pass --job-id N")
        spec = rebase(spec, job, fetch_version(spec, job, args))
        notes.append(
            f"job {job}: base.config merged on top of version {spec.rebased_on} as "
            f"{args.endpoint} has it now (base.from_version: {spec.from_version}); a run "
            "resolves it again when it starts"
        )
    else:
        job = args.job_id or (jobs[0] if jobs else None)
        if job is not None:
            spec = bind(spec, job)
        if spec.from_version is not None:
            notes.append(
                f"base.from_version: {spec.from_version}: each job's base body comes from the "
                "server (its version detail) and base.config is merged on top; shown is the "
                "spec's own partial body. Preview the merge offline with --from-file "
                "VERSION.json (a saved version detail)"
            )
    if count > 1:
        notes.append(
            f"{count} jobs ({', '.join(map(str, jobs))}): each gets these points; "
            f"showing job {job}"
        )
    elif job is None and spec.plan.body.uses_job_id:
        notes.append("no job named: {job_id} is shown as is; `run --job-id N` fills it in")
    return spec, count, notes


def fetch_version(spec: SweepSpec, job: int, args: argparse.Namespace) -> dict[str, Any]:
    """The detail of the version a run would build ``job``'s versions on, from ``--endpoint``."""
    import anyio

    from batchsubmit.auth import credentials_for
    from batchsubmit.runner import DEFAULT_RATE, fetch_base, project_id_for

    if args.endpoint == "emulator":
        raise UsageError(
            "--endpoint emulator would ask a fresh embedded emulator, not the one a run uses: "
            "start `batchsubmit emulator` and pass its URL, or preview offline with --from-file"
        )
    project_id = project_id_for(spec, args.project_id, os.environ)
    credentials = credentials_for(args.endpoint, os.environ, project_id=project_id)
    return anyio.run(
        lambda: fetch_base(
            spec, job, endpoint=args.endpoint, credentials=credentials,
            rate=spec.submit.rate or DEFAULT_RATE,
        ),
        backend="asyncio",
    )


def run(args: argparse.Namespace) -> int:
    """Load, check and print; SpecError propagates to the CLI, which exits 2."""
    from batchsubmit.sweep import load_spec, preflight
    from batchsubmit.sweep.expand import sendable_points

    loaded = load_spec(args.spec)
    spec, jobs, notes = prepare(loaded, args)
    points = sendable_points(spec)  # the bound `run` applies: refused here too, at once
    if args.count:
        _notes(notes, to_stderr=True)
        print(points * jobs)
        return 0
    total = preflight(spec)
    try:
        if args.json:
            _notes(notes, to_stderr=True)
            # the key as a run's ledger has it: "<job>:<key>" when the spec has several jobs
            many = len(loaded.target.job_ids) > 1 and spec.target.job_id is not None
            _print_json(spec, args.limit, f"{spec.target.job_id}:" if many else "")
        else:
            rate = args.rate or spec.submit.rate
            _print_table(spec, total, args.limit or DEFAULT_ROWS, rate, jobs, notes)
    except BrokenPipeError:  # `| head`: the reader has seen enough
        silence_stdout()
    return 0


def _notes(notes: list[str], *, to_stderr: bool) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr if to_stderr else sys.stdout)


def _print_json(spec: SweepSpec, limit: int | None, prefix: str = "") -> None:
    from batchsubmit.sweep import iter_points

    write = sys.stdout.write
    for point in itertools.islice(iter_points(spec, validate=False), limit):
        line = {"index": point.index, "key": prefix + point.key, **point.body}  # body unchanged
        write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _print_table(
    spec: SweepSpec,
    total: int,
    limit: int,
    rate: float | None,
    jobs: int = 1,
    notes: list[str] | None = None,
) -> None:
    from rich.console import Console  # imported here: --count and --json never need rich
    from rich.table import Table

    from batchsubmit.sweep import iter_points
    from batchsubmit.sweep.v2body import job_name

    title = f"{spec.name}  ({spec.path})"
    if spec.target.job_id is not None:
        title += f"  job {spec.target.job_id}"
    if spec.rebased_on is not None:
        title += f" on version {spec.rebased_on}"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("key", style="cyan", no_wrap=True)
    v2 = spec.target.api == "v2"
    if v2:
        table.add_column("job name", overflow="fold")
    table.add_column("parameters")
    table.add_column("train_url", overflow="fold")
    shown = 0
    for point in itertools.islice(iter_points(spec, validate=False), limit):
        table.add_row(
            str(point.index),
            point.key,
            *((job_name(point),) if v2 else ()),
            " ".join(f"{label}={value}" for label, value in point.values),
            point.train_url,
        )
        shown += 1
    console = Console(soft_wrap=False)
    console.print(table)
    if spec.from_version is not None:  # nothing is a surprise: the whole body of the first point
        first = next(iter_points(spec, validate=False))
        console.print(f"request body of point #{first.index}:", highlight=False)
        console.print_json(json.dumps(first.body, ensure_ascii=False))
    for note in notes or ():
        console.print(f"note: {note}", highlight=False)
    summary = f"{total} point{'s' if total != 1 else ''}"
    if jobs > 1:
        summary += f" per job x {jobs} jobs = {total * jobs} new versions"
    elif v2:
        summary += f" = {total} new training job{'s' if total != 1 else ''}"
    if spec.plan.partial:
        summary += ", every field given valid (the rest of the body comes from the server)"
    else:
        summary += ", all valid"
    if shown < total:
        summary += f" (showing the first {shown}; --limit N for more)"
    if rate is not None:
        sends = total * jobs
        summary += f"; at {rate:g} requests/s, submitting takes about {duration(sends / rate)}"
    console.print(summary, highlight=False)


