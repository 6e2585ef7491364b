"""Set-based statements over a batch: its rows bound as one array per column.

`INSERT … SELECT … FROM unnest(CAST(:a AS int[]), CAST(:b AS uuid[]), …)` writes any number
of rows with one statement and one round trip, and its text never changes, so SQLAlchemy
compiles it once; an executemany costs a statement per row on both sides of the connection,
and a multi-row VALUES list is compiled again for every batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import TextClause, text

#: (column, PostgreSQL element type) pairs; the bind parameters are named after the columns
Columns = Sequence[tuple[str, str]]


def unnest(columns: Columns, alias: str = "v") -> str:
    """`unnest(CAST(:col AS type[]), …) AS alias(col, …)`."""
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns)
    return f"unnest({arrays}) AS {alias}({', '.join(name for name, _ in columns)})"


def insert_rows(table: str, columns: Columns, *, order_by: str = "") -> TextClause:
    """`INSERT INTO table (columns) SELECT * FROM unnest(…)`, rows in array order (or
    `order_by`: a lock order)."""
    names = ", ".join(name for name, _ in columns)
    order = f" ORDER BY {order_by}" if order_by else ""
    # table and column names come from this package's constants, never from input
    return text(f"INSERT INTO {table} ({names}) SELECT {names} FROM {unnest(columns)}{order}")  # noqa: S608


def arrays(rows: Iterable[Mapping[str, Any]], columns: Columns) -> dict[str, list[Any]]:
    """Rows (mappings by column) as the column arrays the statements above bind."""
    bound: dict[str, list[Any]] = {name: [] for name, _ in columns}
    for row in rows:
        for name, values in bound.items():
            values.append(row[name])
    return bound
