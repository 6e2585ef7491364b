"""PostgreSQL WAL positions (LSNs) and the arithmetic on them.

An LSN is printed as two hexadecimal halves, `16/B374D848`: the high and low 32 bits of a
byte position in the WAL stream. Replica lag and "how much WAL did we lose" are byte
differences between two of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
#: Default WAL segment size (initdb --wal-segsize); segment file names depend on it.
SEGMENT_SIZE = 16 * 1024 * 1024


@total_ordering
@dataclass(frozen=True)
class Lsn:
    """A WAL byte position; ordered, subtractable (bytes between two positions)."""

    position: int

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """`16/B374D848` → Lsn; ValueError naming the text when it is not an LSN."""
        match = _LSN.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a WAL position like 16/B374D848")
        return cls((int(match[1], 16) << 32) | int(match[2], 16))

    def __str__(self) -> str:
        return f"{self.position >> 32:X}/{self.position & 0xFFFFFFFF:X}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Lsn):
            return NotImplemented
        return self.position < other.position

    def __sub__(self, other: Lsn) -> int:
        return self.position - other.position

    def segment_name(self, timeline: int = 1, segment_size: int = SEGMENT_SIZE) -> str:
        """The WAL file (24 hex digits) that holds this position on `timeline`."""
        segment = self.position // segment_size
        per_xlogid = 0x100000000 // segment_size
        return f"{timeline:08X}{segment // per_xlogid:08X}{segment % per_xlogid:08X}"
