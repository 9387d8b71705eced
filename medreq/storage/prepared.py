"""Hot statements, compiled once per parameter set and run straight on the DBAPI cursor.

A request → answer cycle runs about ten statements. Through SQLAlchemy's execution layer
each costs ~60 µs of Python around ~5 µs of SQLite, so on SQLite the few statements on the
hot path are compiled once (by SQLAlchemy, for the SQLite dialect) and then executed on the
raw `sqlite3` connection. Other databases run the same statement through SQLAlchemy, so the
statement is defined once and both paths return the same rows. (On PostgreSQL the hot
transactions that use them normally run as single statements instead: storage/pgfast.py.)

Only public SQLAlchemy API is used: `ClauseElement.compile()` with `column_keys`, and of the
compiled statement `.string`, `.params` and `.positiontup` (documented on `SQLCompiler`: the
names of the positional parameters in order), `UpdateBase.exported_columns` (the RETURNING
columns) and `SelectBase.exported_columns` (a query's columns), and
`PoolProxiedConnection.dbapi_connection`. A statement must not use an expanding parameter
(`in_()` of plain values): its SQL is only known once the values are (use `literal()`s).

A row is a named tuple of the RETURNING columns on both paths (`Prepared.row`); the service
reads it with attributes and `_asdict()`, which SQLAlchemy's `Row` offers too (the leading
underscore is the named-tuple convention for public methods, not privacy).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import DateTime
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select


class _Compiled(NamedTuple):
    sql: str
    order: tuple[str, ...]  # parameter names in the order of the `?` placeholders
    constants: dict[str, Any]  # values the statement itself binds (e.g. `last_event_id + 1`)
    datetimes: tuple[int, ...]  # the placeholders of DateTime values, which `_bind` converts

    def values(self, params: dict[str, Any]) -> list[Any]:
        """The placeholders' values, in order. Only DateTime ones go through `_bind`: calling it
        on every value was 240 calls and 7 % of the service's CPU per group cycle (cProfile)."""
        if self.constants:
            params = {**self.constants, **params}
        values = [params[name] for name in self.order]
        for i in self.datetimes:
            values[i] = _bind(values[i])
        return values


class Prepared:
    """One statement; `run` gives its RETURNING rows as `self.row` named tuples."""

    def __init__(self, statement: UpdateBase | Select[Any]) -> None:
        self.statement = statement
        columns = list(statement.exported_columns)
        #: the row type of this statement's results, on every database
        self.row: type[Any] = namedtuple("Record", [column.key for column in columns])  # type: ignore[misc]
        # positions of the DateTime columns: SQLite hands them back as text
        self._datetimes = tuple(i for i, column in enumerate(columns) if isinstance(column.type, DateTime))
        self._compiled: dict[tuple[str, ...], _Compiled] = {}

    def run(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        raw = _sqlite_connection(conn)
        if raw is None:
            return self.run_plain(conn, params)
        compiled = self._compiled.get(tuple(params))
        if compiled is None:
            compiled = self._compile(conn, tuple(params))
        cursor = raw.execute(compiled.sql, compiled.values(params))
        if cursor.description is None:
            return []
        return [self._record(row) for row in cursor.fetchall()]

    def run_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Run a statement without RETURNING once per parameter set (each with the same keys), as
        one ``executemany``: a group's events are one call instead of one per event."""
        if not rows:
            return
        raw = _sqlite_connection(conn)
        if raw is None:
            self.run_many_plain(conn, rows)
            return
        keys = tuple(rows[0])
        compiled = self._compiled.get(keys)
        if compiled is None:
            compiled = self._compile(conn, keys)
        raw.executemany(compiled.sql, [compiled.values(params) for params in rows])

    def run_many_plain(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """`run_many` through SQLAlchemy's execution layer (its executemany)."""
        if rows:
            conn.execute(self.statement, list(rows))

    def run_plain(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        """The statement through SQLAlchemy's execution layer (every database but SQLite)."""
        result = conn.execute(self.statement, params)
        if not result.returns_rows:
            return []
        make = self.row._make
        return [make(row) for row in result]

    def _record(self, row: Sequence[Any]) -> Any:
        if not self._datetimes:
            return self.row._make(row)
        values = list(row)
        for i in self._datetimes:
            if isinstance(values[i], str):
                values[i] = datetime.fromisoformat(values[i])
        return self.row._make(values)

    def _compile(self, conn: Connection, keys: tuple[str, ...]) -> _Compiled:
        result = self.statement.compile(dialect=conn.dialect, column_keys=list(keys))
        assert isinstance(result, SQLCompiler)
        order = tuple(result.positiontup or ())
        constants = {k: v for k, v in result.params.items() if k not in keys}  # literals in the SQL
        datetimes = tuple(i for i, name in enumerate(order) if isinstance(result.binds[name].type, DateTime))
        compiled = self._compiled[keys] = _Compiled(result.string, order, constants, datetimes)
        return compiled


def _sqlite_connection(conn: Connection) -> Any:
    if conn.dialect.name != "sqlite" or conn.dialect.paramstyle != "qmark":
        return None
    return conn.connection.dbapi_connection


_last_bound: tuple[datetime | None, str] = (None, "")


def _bind(value: Any) -> Any:
    """A datetime in SQLAlchemy's storage format for DateTime on SQLite (`2026-11-29
    05:20:25.000000`, UTC), so rows written here are identical to the plain path's.
    `isoformat` rather than `strftime`: 2.7 against 5.7 µs, seven times per full cycle. A UTC
    time's text is cut before its offset rather than made from a `replace`d copy, and the last
    time bound is not formatted again (a change binds one time to all its rows: `created_at`,
    `updated_at`, its events'): `replace` and `isoformat` were 8.5 % of a group cycle's
    instructions (callgrind), 30 calls of each in its statements."""
    if not isinstance(value, datetime):
        return value
    global _last_bound
    last, text = _last_bound  # one tuple: read and replaced whole, by any thread
    if value is last:  # it is held here, so no other object can have its id
        return text
    if value.tzinfo is UTC:
        text = value.isoformat(" ", "microseconds")[: -len("+00:00")]
    elif value.tzinfo is not None:
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    else:
        text = value.isoformat(" ", "microseconds")
    _last_bound = (value, text)
    return text
