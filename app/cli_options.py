"""Option types shared by the command line's subcommands (argparse ``type=``): a bad value is
refused by argparse itself, with the option's name, before any command runs (exit 2)."""

from __future__ import annotations

import argparse
from datetime import date


def iso_date(value: str) -> date:
    """A day written YYYY-MM-DD."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected YYYY-MM-DD") from None
