"""``batchsubmit expand SPEC``: show what a sweep spec would send, without sending anything."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

from batchsubmit.sweep import SweepSpec, count_points, iter_points, load_spec, preflight

DESCRIPTION = """\
Expand a sweep spec into its points and check every one, without touching the network.

Each point is one create-version request: the spec's base body with the point's values added to
config.parameter and {placeholders} filled in. Every body is rendered and validated against the
API's rules first (preflight), so a spec that passes here sends nothing invalid. Exit status 0
when the spec is valid, 2 with a message naming the file, line, field and point when it is not.
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
"""

DEFAULT_ROWS = 50


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``expand`` subcommand."""
    parser = subparsers.add_parser(
        "expand",
        help="show and check the points of a sweep spec (no network)",
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
        help="print one full request body per line (JSON Lines) instead of the table",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help=f"show at most N points (default: all with --json, {DEFAULT_ROWS} in the table); "
        "every point is still checked",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help="requests per second for the expected submission time (default: submit.rate of "
        "the spec)",
    )
    parser.set_defaults(func=run)


def duration(seconds: float) -> str:
    """``7260`` -> ``"2h 1m 0s"``: a human-readable duration, rounded up to whole seconds."""
    total = max(0, int(-(-seconds // 1)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def run(args: argparse.Namespace) -> int:
    """Load, check and print; SpecError propagates to the CLI, which exits 2."""
    spec = load_spec(args.spec)
    if args.count:
        print(count_points(spec))
        return 0
    total = preflight(spec)
    try:
        if args.json:
            _print_json(spec, args.limit)
        else:
            _print_table(spec, total, args.limit or DEFAULT_ROWS, args.rate or spec.submit.rate)
    except BrokenPipeError:  # `| head`: the reader has seen enough
        _silence_stdout()
    return 0


def _print_json(spec: SweepSpec, limit: int | None) -> None:
    write = sys.stdout.write
    for point in itertools.islice(iter_points(spec, validate=False), limit):
        write(json.dumps(point.body, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _print_table(spec: SweepSpec, total: int, limit: int, rate: float | None) -> None:
    from rich.console import Console  # imported here: --count and --json never need rich
    from rich.table import Table

    table = Table(title=f"{spec.name}  ({spec.path})", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("parameters")
    table.add_column("train_url", overflow="fold")
    shown = 0
    for point in itertools.islice(iter_points(spec, validate=False), limit):
        table.add_row(
            str(point.index),
            point.key,
            " ".join(f"{label}={value}" for label, value in point.values),
            point.train_url,
        )
        shown += 1
    console = Console(soft_wrap=False)
    console.print(table)
    summary = f"{total} point{'s' if total != 1 else ''}, all valid"
    if shown < total:
        summary += f" (showing the first {shown}; --limit N for more)"
    if rate is not None:
        summary += f"; at {rate:g} requests/s, submitting takes about {duration(total / rate)}"
    console.print(summary, highlight=False)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
