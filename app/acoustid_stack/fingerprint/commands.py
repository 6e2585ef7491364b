"""`acoustid-stack fingerprint decode|encode|compare`: look inside what a client submitted.

Every FINGERPRINT argument may be `-` (read standard input) and accepts what operators have at
hand: the compressed string (`fpcalc`, API logs), `fpcalc -json` / `fpcalc -raw -json` output,
plain `fpcalc -raw` output (`FINGERPRINT=1,2,…`), a JSON list, a PostgreSQL `int4[]` literal
(`{1,-2,…}`) or comma/space-separated integers.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click
import numpy as np

from acoustid_stack.errors import UserError
from acoustid_stack.fingerprint.codec import (
    DEFAULT_ALGORITHM,
    Fingerprint,
    InvalidFingerprint,
    decode_fingerprint,
    encode_fingerprint,
)
from acoustid_stack.fingerprint.compare import compare2
from acoustid_stack.fingerprint.hashes import UInt32Array, as_uint32

_INTEGER_LIST = re.compile(r"^[{\[]?\s*(-?\d+(\s*[,\s]\s*-?\d+)*)?\s*[}\]]?$")
_FPCALC_LINE = re.compile(r"^FINGERPRINT=(.*)$", re.MULTILINE)


@click.group()
def fingerprint() -> None:
    """Decode, encode and compare AcoustID fingerprints."""


@fingerprint.command()
@click.argument("fingerprint_text", metavar="FINGERPRINT")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--signed", is_flag=True, help="Print hashes as signed int32 (database view).")
def decode(fingerprint_text: str, as_json: bool, signed: bool) -> None:
    """Print the algorithm, length and hashes of a compressed fingerprint."""
    decoded = _decode(_read(fingerprint_text), "FINGERPRINT")
    hashes = decoded.hashes.view(np.int32) if signed else decoded.hashes
    if as_json:
        payload = {"algorithm": decoded.algorithm, "length": hashes.size, "hashes": hashes.tolist()}
        click.echo(json.dumps(payload))
        return
    click.echo(f"algorithm: {decoded.algorithm}")
    click.echo(f"length: {hashes.size}")
    click.echo(f"hashes: {','.join(map(str, hashes.tolist()))}")


@fingerprint.command()
@click.argument("hashes_text", metavar="HASHES", default="-")
@click.option(
    "--algorithm",
    type=click.IntRange(0, 255),
    default=DEFAULT_ALGORITHM,
    show_default=True,
    help="chromaprint algorithm id for the header.",
)
def encode(hashes_text: str, algorithm: int) -> None:
    """Print the compressed string of HASHES (default: read standard input)."""
    text = _read(hashes_text)
    hashes = _parse_hashes(text)
    if hashes is None:
        raise UserError(
            "HASHES is not a list of integers; pass a JSON list, comma-separated integers "
            "or `fpcalc -raw -json` output"
        )
    click.echo(encode_fingerprint(hashes, algorithm))


@fingerprint.command()
@click.argument("first", metavar="FINGERPRINT1")
@click.argument("second", metavar="FINGERPRINT2")
@click.option(
    "--max-offset",
    type=click.IntRange(min=0),
    default=80,
    show_default=True,
    help="Largest alignment shift in hashes (0 = any), as upstream's importer uses.",
)
def compare(first: str, second: str, max_offset: int) -> None:
    """Print the acoustid_compare2 score (0–1) of two fingerprints."""
    a = _load(_read(first), "FINGERPRINT1")
    b = _load(_read(second), "FINGERPRINT2")
    click.echo(f"{compare2(a, b, max_offset):.6f}")


def _read(argument: str) -> str:
    return sys.stdin.read() if argument == "-" else argument


def _load(text: str, name: str) -> UInt32Array:
    hashes = _parse_hashes(text)
    return hashes if hashes is not None else _decode(text, name).hashes


def _decode(text: str, name: str) -> Fingerprint:
    candidate = text.strip()
    fpcalc = _fpcalc_field(candidate)
    if isinstance(fpcalc, str):
        candidate = fpcalc
    try:
        return decode_fingerprint(candidate)
    except InvalidFingerprint as exc:
        raise UserError(
            f"{name} is not a valid fingerprint ({exc}); pass the compressed string fpcalc prints"
        ) from None


def _parse_hashes(text: str) -> UInt32Array | None:
    """The hashes in `text` if it is one of the integer-list forms, else None."""
    stripped = text.strip()
    fpcalc = _fpcalc_field(stripped)
    if isinstance(fpcalc, list):
        return _checked(fpcalc)
    line = _FPCALC_LINE.search(stripped)
    if line:
        stripped = line.group(1).strip()
    if not _INTEGER_LIST.match(stripped):
        return None
    return _checked([int(value) for value in re.findall(r"-?\d+", stripped)])


def _fpcalc_field(text: str) -> object:
    """The "fingerprint" member of `fpcalc -json` output, or None."""
    if not text.startswith("{") or '"' not in text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document.get("fingerprint") if isinstance(document, dict) else None


def _checked(values: list[Any]) -> UInt32Array:
    try:
        return as_uint32(values)
    except ValueError as exc:
        raise UserError(f"HASHES cannot be encoded: {exc}") from None
