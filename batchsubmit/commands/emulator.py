"""``batchsubmit emulator``: serve the local ModelArts v1 and v2 emulator until SIGINT/SIGTERM.

A thin shell: flags become an :class:`EmulatorConfig`, the server runs in ``run_emulator``, and the
one stdout line (the listening URL) is the contract integration tests read. Logs, and the hint of
how to point a run at the server, go to stderr.

Registering the flags imports only the standard library and ``batchsubmit.emulator.constants``:
pydantic, aiohttp and the logging set-up load when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchsubmit.emulator.constants import (
    DEFAULT_PROJECT_ID,
    ERROR_FIELDS,
    GATEWAY_KINDS,
    GATEWAY_PREFIXES,
    PAGE_OFFSETS,
    POLICY_PERIODS,
)
from batchsubmit.emulator.v2_constants import (
    V2_COUNTS,
    V2_LIKES,
    V2_LIMIT_RANGES,
    V2_NAME_CASES,
    V2_NAME_REUSES,
    V2_NAME_SCOPES,
    V2_OFFSETS,
)
from batchsubmit.errors import UsageError

if TYPE_CHECKING:
    from batchsubmit.emulator import EmulatorConfig

DEFAULT_PORT = 8642

DESCRIPTION = """\
Serve a local emulator of the ModelArts v1 training-job API (create job, create/list/get/stop/
delete versions) on 127.0.0.1, so sweeps can be tried, and clients tested, without a cloud
account. Job 10 ("job-10") exists from the start with version 20 (V0001), matching the API
documentation's example; new version ids count up from there.

It serves the v2 API beside it (one training job per point: POST /v2/{project_id}/training-jobs,
POST .../training-job-searches, GET/DELETE .../training-jobs/{id}, POST .../{id}/actions), with
the same gate and faults; its jobs progress Creating -> Pending -> Running -> Completed (or Failed,
Abnormal, Terminated), a taken metadata.name is 400 ModelArts.2751, and the "v2" flags choose an
answer wherever shared/spec/v2-training-jobs.md (section 7) leaves one open.

It checks request bodies by the documented rules, can require a token or AK/SK signatures,
throttles like the API gateway, and injects the faults a client must survive: a 500 before
anything is created, and *ambiguous* outcomes where the version IS created but the reply is a 500,
a reset connection, or a stall longer than the client's timeout. Randomness is seeded (--seed),
so a fault run can be replayed. Created versions progress INIT -> RUNNING -> COMPLETED/FAILED.

By default it answers exactly as the documentation reads. The "drift" flags make it disagree
with the client the way the real service may (each cites its entry in
shared/spec/real-service-unknowns.md): values echoed as numbers, parameters reordered or added,
OBS paths rewritten, short pages, errors as HTTP 200, another message field, another gateway
prefix or counting, a looser validator. A client that creates every point exactly once should
still do so with any of them on.

On start it prints one line to stdout, `batchsubmit emulator listening on http://HOST:PORT`, and
to stderr how to point `batchsubmit run` at it; then it serves until SIGINT or SIGTERM, saves
--state-file if given, and exits 0. Secrets (tokens, SKs) are never printed; prefer passing them
through the environment, since flags show in `ps`.
"""

EPILOG = """\
examples:
  batchsubmit emulator
      open auth, no faults, port 8642
  batchsubmit emulator --port 0 --rate 10 --burst 5
      a free port; the gateway's 429 APIGW.0308 beyond 10 requests/s (no Retry-After, as G2)
  batchsubmit emulator --rate 40 --gateway sliding-window --no-announce-limit
      an undisclosed limit of 40 in any trailing second: can a client find it?
  batchsubmit emulator --rate 1 --policy-period minute --gateway fixed-window
      "limit:60,time:1 minute": 60 requests per aligned minute, all at once if sent so
  batchsubmit emulator --echo-numbers --shuffle-params --add-params seed=0 \\
      --normalise-train-url --max-per-page 50 --errors-200 --error-field error_msg
      a service that echoes nothing byte for byte: resume and reconciliation must still
      find every version (run a sweep, kill it, run it again)
  batchsubmit emulator --ambiguous-share 0.2 --ambiguous-kinds reset,stall --stall-seconds 60
      one create in five is made but its reply is lost: check your client creates exactly once
  HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=... batchsubmit emulator --auth aksk
      require SDK-HMAC-SHA256 signatures, with the same variables the client reads
  batchsubmit emulator --v2-offset record --v2-count page --search-lag 5 --v2-race-window 1
      v2: record offsets, count = this page, new jobs unseen for 5 s, a racy duplicate check
  batchsubmit emulator --state-file /tmp/emu.json --admin
      keep state across restarts; GET /_admin/state, POST /_admin/faults, POST /_admin/reset
"""


def register(subparsers: Any) -> None:
    """Add the ``emulator`` subcommand to the CLI."""
    parser = subparsers.add_parser(
        "emulator",
        help="serve a local ModelArts training-job API emulator (v1 and v2)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("where and who")
    where.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    where.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port; 0 picks a free one (default %(default)s)",
    )
    where.add_argument(
        "--project-id",
        default=DEFAULT_PROJECT_ID,
        help="the one project id served; others get 403 ModelArts.0210 (default %(default)s)",
    )
    where.add_argument(
        "--auth",
        choices=("open", "token", "aksk"),
        default="open",
        help="open: no check; token: X-Auth-Token must be a --token (default: $MODELARTS_TOKEN); "
        "aksk: SDK-HMAC-SHA256 signature by an --aksk pair (default: $HUAWEICLOUD_SDK_AK/_SK)",
    )
    where.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="an accepted token; repeatable",
    )
    where.add_argument(
        "--aksk",
        action="append",
        default=[],
        metavar="AK:SK",
        help="an accepted AK/SK pair; repeatable",
    )
    where.add_argument(
        "--date-window",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="how far X-Sdk-Date may be from the server's clock (default %(default)g)",
    )

    state = parser.add_argument_group("state")
    state.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="JOB_ID=VERSION_ID",
        help="seed a job with its first version (repeatable; replaces the default 10=20)",
    )
    state.add_argument(
        "--max-versions",
        type=int,
        metavar="N",
        help="versions per job before 400 ModelArts.0118 (default: unlimited)",
    )
    state.add_argument(
        "--state-file", type=Path, help="load state from, and save it to, this JSON file"
    )
    state.add_argument(
        "--save-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="save a changed state this often; 0 = on every change (default %(default)g)",
    )
    state.add_argument(
        "--admin", action="store_true", help="enable /_admin/state, /_admin/faults, /_admin/reset"
    )

    limits = parser.add_argument_group(
        "the gateway (one limiter per project; real-service-unknowns.md G1-G5)"
    )
    limits.add_argument(
        "--rate", type=float, metavar="PER_SECOND", help="requests/s (default: no limit)"
    )
    limits.add_argument(
        "--gateway",
        choices=GATEWAY_KINDS,
        default="bucket",
        help="how the gateway counts, which nobody documents (G5): bucket = a token bucket "
        "refilled at --rate/s, of --burst tokens; fixed-window = at most L requests per aligned "
        "period; sliding-window = at most L in any trailing period, where L = ceil(rate) a "
        "second, or rate*60 rounded a minute (default %(default)s)",
    )
    limits.add_argument(
        "--burst",
        type=int,
        metavar="N",
        help="bucket size, --gateway bucket only (default: ceil(rate))",
    )
    limits.add_argument(
        "--policy-period",
        choices=POLICY_PERIODS,
        default="second",
        help="the period the 429 announces, 'limit:L,time:1 second' or 'time:1 minute' (G3); "
        "with minute, L = rate*60 rounded and the windows are 60 s long (a bucket still refills "
        "at rate/s) (default %(default)s)",
    )
    limits.add_argument(
        "--announce-limit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="name the policy in the 429 message, as the gateway does (G3); with "
        "--no-announce-limit the message says only 'The throttling threshold has been "
        "reached', to measure a client against an undisclosed limit (default: announce)",
    )
    limits.add_argument(
        "--shared-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="another client sends R requests/s under the same policy (its own 429s are not "
        "retried), while the 429 still announces the whole limit: a client must find its share "
        "of it (default: none)",
    )
    limits.add_argument(
        "--retry-after",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="send a Retry-After header on 429; the real gateway is not known to (G2), so the "
        "default is not to",
    )
    limits.add_argument(
        "--gateway-prefix",
        choices=GATEWAY_PREFIXES,
        default="APIGW",
        help="prefix of every gateway error code: APIGW.0308 throttled, APIGW.0301 "
        "authentication failed, APIGW.0101 no such API; older pages spell them APIG. (G1) "
        "(default %(default)s)",
    )

    drift = parser.add_argument_group(
        "drift from the documentation (shared/spec/real-service-unknowns.md)"
    )
    drift.add_argument(
        "--echo-numbers",
        action="store_true",
        help="list and detail return each parameter value that is a JSON number as a number "
        '("0.010" -> 0.01, "32" -> 32) and "true"/"false" as booleans, as the reference\'s '
        "own samples show (U1)",
    )
    drift.add_argument(
        "--shuffle-params",
        action="store_true",
        help="list and detail return the parameters in another order, fixed per version (U2)",
    )
    drift.add_argument(
        "--add-params",
        metavar="LABEL=VALUE,...",
        default="",
        help="labels the service adds to every version's parameters in list and detail, as "
        "built-in algorithms carry defaults; a label the request sent keeps its value (U2)",
    )
    drift.add_argument(
        "--normalise-train-url",
        action="store_true",
        help="list and detail return train_url and log_url rewritten: /bucket/a/ -> "
        "obs://bucket/a (U3)",
    )
    drift.add_argument(
        "--max-per-page",
        type=int,
        metavar="N",
        help="list-versions serves at most N versions a page whatever per_page asks, page=0 "
        "too; version_count still counts them all (U4)",
    )
    drift.add_argument(
        "--page-offsets",
        choices=PAGE_OFFSETS,
        default="served",
        help="with --max-per-page, where page p starts: served = at (p-1)*min(per_page, N), "
        "requested = at (p-1)*per_page, so the cap skips the rest of each page (U4) "
        "(default %(default)s)",
    )
    drift.add_argument(
        "--errors-200",
        action="store_true",
        help="answer the service's own 4xx errors as HTTP 200 with is_success false and the "
        "same body (U6); gateway errors (429, and 401/404 with an APIG/APIGW code) keep "
        "their status; v1 only (v2 has no is_success)",
    )
    drift.add_argument(
        "--error-field",
        choices=ERROR_FIELDS,
        default="error_message",
        help="the name of the message in the service's failure body: error_message (current "
        "create-version page) or error_msg (older pages, the SDK) (U7); v1 only, v2 answers "
        "error_msg (default %(default)s)",
    )
    strictness = drift.add_mutually_exclusive_group()
    strictness.add_argument(
        "--strict",
        dest="strict",
        action="store_true",
        default=True,
        help="refuse model_id beside app_url/boot_file_url, and pool_id beside spec_id, as the "
        "documentation's rules say (default)",
    )
    strictness.add_argument(
        "--lenient",
        dest="strict",
        action="store_false",
        help="accept both, as the documented sample requests send them (U9); config.pool_id "
        "(a dedicated pool, U8) or spec_id is required either way",
    )

    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="MS", help="added to every API request"
    )
    faults.add_argument(
        "--latency-jitter-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="random extra latency (see next)",
    )
    faults.add_argument(
        "--latency-distribution",
        choices=("uniform", "exponential"),
        default="uniform",
        help="uniform in [0, jitter], or exponential with mean jitter (default %(default)s)",
    )
    faults.add_argument(
        "--error-500-share",
        type=float,
        default=0.0,
        metavar="P",
        help="share of creates answered 500 ModelArts.0010 before anything is created",
    )
    faults.add_argument(
        "--faults-on-lists", action="store_true", help="let --error-500-share hit reads too"
    )
    faults.add_argument(
        "--ambiguous-share",
        type=float,
        default=0.0,
        metavar="P",
        help="share of version creates that succeed but whose reply is lost (see next)",
    )
    faults.add_argument(
        "--ambiguous-kinds",
        default="500,reset,stall",
        metavar="KINDS",
        help="comma-separated: 500 (a 500 reply), reset (connection dropped, no reply), "
        "stall (reply held --stall-seconds) (default %(default)s)",
    )
    faults.add_argument(
        "--stall-seconds",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="stall length (default %(default)g)",
    )
    faults.add_argument(
        "--list-lag",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a new version shows in list/detail only this long after creation",
    )
    faults.add_argument(
        "--seed", type=int, default=0, metavar="N", help="RNG seed of all faults (default 0)"
    )

    life = parser.add_argument_group("simulated job life")
    life.add_argument(
        "--init-seconds",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="INIT (1) lasts this long",
    )
    life.add_argument(
        "--run-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="then RUNNING (8) this long",
    )
    life.add_argument(
        "--failure-share",
        type=float,
        default=0.0,
        metavar="P",
        help="share ending FAILED (11) instead of COMPLETED (10); v2 jobs end Failed after "
        "Running",
    )
    _register_v2(parser)
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="stderr log level (default %(default)s)",
    )
    parser.set_defaults(func=run)


# The v2 API's switches, one per open point of v2-training-jobs.md section 7:
# (flag, choices or a type, default, metavar, help).
_V2_FLAGS: tuple[tuple[str, Any, Any, str | None, str], ...] = (
    ("--v2-offset", V2_OFFSETS, "page", None,
     "what search's offset counts, on which the sources disagree (section 7, offset "
     "semantics): page = a 0-based page index, items [offset*limit, +limit); record = a "
     "record offset, items [offset, offset+limit)"),
    ("--v2-count", V2_COUNTS, "matching", None,
     "what search's count means (section 7, total/count): matching = the jobs matching the "
     "filters, as the table says; page = the items on this page, as the example reads; total "
     "is every visible job either way"),
    ("--v2-default-limit", int, 10, "N",
     "search's limit when the body gives none, 1..50 (section 7, default limit; a guess)"),
    ("--v2-limit-range", V2_LIMIT_RANGES, "reject", None,
     "a limit outside 1..50 (section 7): reject = 400 ModelArts.2816, clamp = served as 1 or 50"),
    ("--v2-like", V2_LIKES, "contains", None,
     "how the name filter's like matches (section 7, like matching): a case-sensitive "
     "substring; or ignoring case; or SQL LIKE, '_' and '%%' wildcards"),
    ("--v2-name-scope", V2_NAME_SCOPES, "workspace", None,
     "where metadata.name must be unique (section 7, name-uniqueness scope): per project and "
     "workspace_id, or per project"),
    ("--v2-name-case", V2_NAME_CASES, "sensitive", None,
     "whether the duplicate-name check (400 ModelArts.2751) tells 'Lr' from 'lr' (section 7, "
     "name comparison)"),
    ("--v2-name-reuse", V2_NAME_REUSES, "after_delete", None,
     "when a deleted job's name may be used again (section 7, name reuse after delete): never; "
     "after_delete = once the delete has finished (--v2-delete-lag); immediately = as soon as "
     "DELETE is answered"),
    ("--v2-race-window", float, 0.0, "SECONDS",
     "two creates of one name less than this apart are both accepted, as a check racing with a "
     "concurrent create would (section 7, duplicate check vs. concurrent creates); 0 = one "
     "201, then 2751"),
    ("--v2-quota", int, None, "N",
     "active jobs (Creating, Pending, Running, Terminating) before 400 ModelArts.2815 (section "
     "7, quota; the contract's example is 20; default: no quota)"),
    ("--v2-delete-lag", float, 60.0, "SECONDS",
     "how long a deleted job stays visible to search and detail (section 7, delete lag: a few "
     "of Terraform's 20 s polls)"),
    ("--search-lag", float, 0.0, "SECONDS",
     "a new job shows in search and detail only this long after creation (section 7, search "
     "visibility lag)"),
    ("--v2-creating-seconds", float, 1.0, "SECONDS",
     "a v2 job is Creating this long (section 7, phase timeline)"),
    ("--v2-pending-seconds", float, 1.0, "SECONDS",
     "then Pending this long (section 7, phase timeline)"),
    ("--v2-running-seconds", float, 10.0, "SECONDS",
     "then Running this long (section 7, phase timeline)"),
    ("--v2-terminating-seconds", float, 1.0, "SECONDS",
     "a terminated job is Terminating this long, then Terminated"),
    ("--abnormal-share", float, 0.0, "P",
     "share of v2 jobs ending Abnormal (CreateFailed) after Creating, beside --failure-share "
     "ending Failed after Running (section 7, final phase mix; Abnormal is final)"),
)  # fmt: skip


def _register_v2(parser: argparse.ArgumentParser) -> None:
    """The v2 API's switches: where v2-training-jobs.md is silent (its section 7)."""
    v2 = parser.add_argument_group(
        "the v2 API: /v2/{project_id}/training-jobs (shared/spec/v2-training-jobs.md; each "
        "switch is an open point of its section 7)"
    )
    for flag, kind, default, metavar, text in _V2_FLAGS:
        shown = "" if default is None else " (default %(default)s)"
        if isinstance(kind, tuple):
            v2.add_argument(flag, choices=kind, default=default, help=text + shown)
        else:
            v2.add_argument(flag, type=kind, default=default, metavar=metavar, help=text + shown)


def parse_add_params(text: str) -> tuple[tuple[str, str], ...]:
    """``--add-params "a=1,b=x"`` -> (("a", "1"), ("b", "x")); UsageError if malformed."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        label, sep, value = item.partition("=")
        if not sep or not label.strip():
            raise UsageError(
                f"--add-params takes LABEL=VALUE,..., e.g. seed=0,epochs=10; got {item!r}"
            )
        pairs.append((label.strip(), value.strip()))
    return tuple(pairs)


# Config fields set straight from the flag of the same name (argparse dest) ...
_FLAG_FIELDS = (
    "host", "port", "project_id", "auth", "state_file", "admin", "seed", "rate", "burst",
    "shared_rate", "gateway", "policy_period", "announce_limit", "retry_after", "gateway_prefix",
    "echo_numbers",
    "shuffle_params", "normalise_train_url", "max_per_page", "page_offsets", "errors_200",
    "error_field", "strict", "latency_ms", "latency_jitter_ms", "latency_distribution",
    "error_500_share", "ambiguous_share", "stall_seconds", "faults_on_lists", "list_lag",
    "init_seconds", "run_seconds", "failure_share", "v2_offset", "v2_count", "v2_default_limit",
    "v2_limit_range", "v2_like", "v2_name_scope", "v2_name_case", "v2_name_reuse",
    "v2_race_window", "v2_quota", "v2_delete_lag", "search_lag", "v2_creating_seconds",
    "v2_pending_seconds", "v2_running_seconds", "v2_terminating_seconds", "abnormal_share",
)
# ... and those whose flag is spelt otherwise: field -> argparse dest.
_RENAMED_FLAGS = {
    "date_window_seconds": "date_window",
    "max_versions_per_job": "max_versions",
    "state_save_interval": "save_interval",
}


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """Flags (and, for secrets, the environment) to a validated config; UsageError if wrong."""
    from pydantic import ValidationError

    from batchsubmit.emulator import EmulatorConfig

    tokens, access_keys = _secrets(args)
    settings: dict[str, Any] = {field: getattr(args, field) for field in _FLAG_FIELDS}
    settings.update({field: getattr(args, dest) for field, dest in _RENAMED_FLAGS.items()})
    settings.update(
        tokens=tokens, access_keys=access_keys, add_params=parse_add_params(args.add_params),
        ambiguous_kinds=[k.strip() for k in args.ambiguous_kinds.split(",") if k.strip()],
    )
    jobs = _jobs(args.job)
    if jobs:
        settings["jobs"] = jobs
    try:
        return EmulatorConfig.model_validate(settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise UsageError(f"invalid emulator settings: {problems}") from None


def _secrets(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """Accepted tokens and AK -> SK pairs: the flags, else the environment's."""
    tokens = list(args.token)
    if args.auth == "token" and not tokens and os.environ.get("MODELARTS_TOKEN"):
        tokens.append(os.environ["MODELARTS_TOKEN"])
    access_keys: dict[str, str] = {}
    for pair in args.aksk:
        ak, sep, sk = pair.partition(":")
        if not sep or not ak or not sk:
            raise UsageError("--aksk takes AK:SK (the value is not repeated here)")
        access_keys[ak] = sk
    env_ak, env_sk = os.environ.get("HUAWEICLOUD_SDK_AK"), os.environ.get("HUAWEICLOUD_SDK_SK")
    if args.auth == "aksk" and not access_keys and env_ak and env_sk:
        access_keys[env_ak] = env_sk
    if args.auth == "token" and not tokens:
        raise UsageError("--auth token needs --token TOKEN or $MODELARTS_TOKEN")
    if args.auth == "aksk" and not access_keys:
        raise UsageError("--auth aksk needs --aksk AK:SK or $HUAWEICLOUD_SDK_AK and _SK")
    return tokens, access_keys


def _jobs(items: list[str]) -> dict[int, int]:
    jobs: dict[int, int] = {}
    for item in items:
        job, sep, version = item.partition("=")
        if not (sep and job.strip().isdigit() and version.strip().isdigit()):
            raise UsageError(f"--job takes JOB_ID=VERSION_ID, e.g. 10=20; got {item!r}")
        jobs[int(job)] = int(version)
    return jobs


def connect_hint(config: EmulatorConfig, url: str) -> str:
    """What to type to point a run at this emulator (for stderr; names no secret)."""
    if config.auth == "open":
        env = ""
        who = (
            "auth is open: no credentials are needed on 127.0.0.1 (any that are set are "
            "accepted too)."
        )
    elif config.auth == "token":
        env = ""
        who = "set MODELARTS_TOKEN to a token this emulator accepts (a --token, or its own)."
    else:
        env = ""
        who = "set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK to a pair this emulator accepts."
    return (
        "point a sweep at it:\n"
        f"  {env}batchsubmit run SPEC --endpoint {url} --project-id {config.project_id}\n"
        f"  {who}\n"
        f"  The project id must be {config.project_id} (the spec's target.project_id, or "
        "--project-id)."
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop."""
    import asyncio
    import errno
    import logging

    from batchsubmit.logs import configure_logging

    config = build_config(args)
    level = getattr(logging, args.log_level.upper())
    configure_logging(level=level)  # stderr; tracebacks without frame locals (secrets)
    try:
        asyncio.run(_serve(config))
    except ValueError as exc:  # a damaged state file
        raise UsageError(str(exc)) from None
    except OSError as exc:  # port taken, state file unwritable
        hint = "; pick another --port (0 = any free port)" if exc.errno == errno.EADDRINUSE else ""
        raise UsageError(
            f"emulator on {config.host}:{config.port}: {exc.strerror or exc}{hint}"
        ) from None
    return 0


async def _serve(config: EmulatorConfig) -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        from batchsubmit.emulator import run_emulator

        async with run_emulator(config) as emulator:
            print(f"batchsubmit emulator listening on {emulator.url}", flush=True)
            print(connect_hint(config, emulator.url), file=sys.stderr, flush=True)
            await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
