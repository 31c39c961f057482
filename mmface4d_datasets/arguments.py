"""Argument types of the ``mmface4d`` command line that refuse out-of-range numbers by name.

An argparse ``type`` raises ``argparse.ArgumentTypeError``; argparse then prints
``argument --seed: ...`` with the usage line and exits 2, like every other input error of the
command. Only the standard library is imported here (every ``mmface4d`` call loads it).
"""

from __future__ import annotations

import argparse
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
