"""``batchsubmit delete LEDGER [--keys K,...] --yes``: delete the versions a ledger created (a
dry run without ``--yes``). The flags, the code and the help live with ``stop``
(:mod:`batchsubmit.commands.stop`); the core is :mod:`batchsubmit.stopping`."""

from __future__ import annotations

from typing import Any

from batchsubmit.commands.stop import add_parser


def register(subparsers: Any) -> None:
    """Add the ``delete`` subcommand to the CLI."""
    add_parser(subparsers, "delete")
