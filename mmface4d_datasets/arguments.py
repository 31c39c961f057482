"""Argument types of the ``mmface4d`` command line that refuse out-of-range numbers by name.

An argparse ``type`` raises ``argparse.ArgumentTypeError``; argparse then prints
``argument --seed: ...`` with the usage line and exits 2, like every other input error of the
command. Only the standard library is imported here (every ``mmface4d`` call loads it).
"""

from __future__ import annotations

import argparse
import difflib
import math

#: Largest seed accepted: seeds reach numpy, torch and JSON files, and 32 bits are plenty.
MAX_SEED = 2**32 - 1


def whole_number(minimum: int | None = 0, maximum: int | None = None):
    """An argparse type: a whole number written in digits, within [minimum, maximum]."""

    def describe() -> str:
        if minimum is not None and maximum is not None:
            return f"a whole number from {minimum} to {maximum}"
        if minimum is not None:
            return f"a whole number of at least {minimum}"
        return "a whole number" if maximum is None else f"a whole number of at most {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {describe()}, got {text!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {describe()}, got {text!r}")
        return value

    return parse


def positive_number(maximum: float | None = None):
    """An argparse type: a finite number greater than zero (and at most ``maximum``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0 or (maximum is not None and value > maximum):
            bound = "" if maximum is None else f" of at most {maximum:g}"
            raise argparse.ArgumentTypeError(f"expected a finite positive number{bound}, got {text!r}")
        return value

    return parse


#: ``--seed``: 0 .. 2**32 - 1.
seed = whole_number(0, MAX_SEED)


#: What every option or argument naming a release accepts (`mmface4d_datasets.release.resolve`).
RELEASE_HELP = (
    "a release folder (holding meta/info.json), `mini` (the small synthetic release, built into the cache on first use), "
    "a folder name in the cache, or a Hub dataset `owner/name`"
)


def add_release_argument(parser: argparse.ArgumentParser, flag: str = "--data", *, required: bool = True, what: str = "") -> None:
    """Add the option (or positional) ``flag`` naming a release; its value goes to
    ``mmface4d_datasets.release.resolve.resolve_release`` in the handler."""
    text = (what + ": " if what else "") + RELEASE_HELP
    if flag.startswith("-"):
        parser.add_argument(flag, required=required, metavar="RELEASE", help=text)
    else:
        parser.add_argument(flag, metavar="RELEASE", help=text)


def did_you_mean(value: str, choices) -> str:
    """ "; did you mean 'x'?" for the valid ``choices`` closest to ``value`` (empty when none is close)."""
    choices = [str(choice) for choice in choices]
    close = difflib.get_close_matches(value, choices, n=3, cutoff=0.6)
    if not close and value:
        close = [choice for choice in choices if choice.startswith(value)][:3]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
