"""Resource amounts as written in a config: `24GiB`, `512 MiB`, `1.5TiB`, `4`.

Units are binary and spelt exactly: B, KiB, MiB, GiB, TiB. Decimal units
(`GB`, `MB`) are refused with the binary spelling to use instead, because
a card sold as "24 GB" holds 24 GiB and the difference (7%) is the size of
a small model. A plain number has no unit: it counts whatever the resource
counts (bytes for memory, or slots, or anything else a user names).
"""

from __future__ import annotations

import math
import re

UNITS: dict[str, int] = {
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
}
_DECIMAL = {"KB": "KiB", "kB": "KiB", "MB": "MiB", "GB": "GiB", "TB": "TiB"}
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*")


class SizeError(ValueError):
    """The text is not a size; the message says why."""


def parse_size(value: str | int | float) -> int:
    """The amount `value` stands for, as a whole number of units (bytes for memory).

    Fractions round to the nearest whole unit (`1.5KiB` is 1536). Negative,
    infinite and unparseable values raise `SizeError`.
    """
    if isinstance(value, bool):
        raise SizeError(f"expected a size such as 24GiB, got {str(value).lower()}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise SizeError(f"a size must be a finite number >= 0, got {value}")
        return round(value)
    m = _SIZE_RE.fullmatch(value)
    if m is None:
        raise SizeError(f'expected a size such as 24GiB or 512MiB, got "{value}"')
    number, unit = m.groups()
    if unit and unit not in UNITS:
        if unit in _DECIMAL:
            raise SizeError(
                f'unit "{unit}" is not accepted: sizes are binary, write {_DECIMAL[unit]}'
            )
        raise SizeError(f'unknown unit "{unit}" (use {", ".join(UNITS)})')
    return round(float(number) * UNITS.get(unit, 1))


def format_size(amount: int, *, unit: bool = True) -> str:
    """`25769803776` -> `24GiB`, `1610612736` -> `1.5GiB`; without `unit`, the plain number."""
    if not unit:
        return str(amount)
    for name in ("TiB", "GiB", "MiB", "KiB"):
        scale = UNITS[name]
        if amount >= scale:
            text = f"{amount / scale:.2f}".rstrip("0").rstrip(".")
            return f"{text}{name}"
    return f"{amount}B"


def has_unit(value: str | int | float) -> bool:
    """Whether `value` was written with a unit (so the resource counts bytes)."""
    return isinstance(value, str) and any(c.isalpha() for c in value)
