"""Hot statements, compiled once per parameter set and run straight on the DBAPI cursor.

A request → answer cycle runs about ten statements. Through SQLAlchemy's execution layer
each costs ~60 µs of Python around ~5 µs of SQLite, so on SQLite the few statements on the
hot path are compiled once (by SQLAlchemy, for the SQLite dialect) and then executed on the
raw `sqlite3` connection. Other databases run the same statement through SQLAlchemy, so the
statement is defined once and both paths return the same `Record`s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import UpdateBase

# SQLAlchemy's storage format for DateTime on SQLite; keep rows written here identical.
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


_Compiled = tuple[str, tuple[str, ...], dict[str, Any], frozenset[str]]


class Record(SimpleNamespace):
    """A row as attributes; `_mapping` mirrors SQLAlchemy's Row for code that wants a dict."""

    @property
    def _mapping(self) -> dict[str, Any]:
        return vars(self)


class Prepared:
    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, ...], _Compiled] = {}

    def run(self, conn: Connection, params: dict[str, Any]) -> list[Record]:
        raw = _sqlite_connection(conn)
        if raw is None:
            return [Record(**row._mapping) for row in conn.execute(self.statement, params)]
        sql, order, constants, datetimes = self._for_sqlite(conn, tuple(params))
        values = {**constants, **params}
        cursor = raw.execute(sql, [_bind(values[name]) for name in order])
        if cursor.description is None:
            return []
        names = [column[0] for column in cursor.description]
        return [
            Record(**{n: _datetime(v) if n in datetimes else v for n, v in zip(names, row, strict=True)})
            for row in cursor.fetchall()
        ]

    def _for_sqlite(self, conn: Connection, keys: tuple[str, ...]) -> _Compiled:
        compiled = self._compiled.get(keys)
        if compiled is None:
            result = self.statement.compile(dialect=conn.dialect, column_keys=list(keys))
            returning = getattr(self.statement, "_returning", ())
            datetimes = frozenset(
                column.name
                for element in returning
                for column in getattr(element, "columns", [element])
                if isinstance(getattr(column, "type", None), DateTime)
            )
            order = tuple(result.positiontup or ())
            constants = {k: v for k, v in result.params.items() if k not in keys}  # literals in the SQL
            compiled = self._compiled[keys] = (result.string, order, constants, datetimes)
        return compiled


def _sqlite_connection(conn: Connection) -> Any:
    if conn.dialect.name != "sqlite" or conn.dialect.paramstyle != "qmark":
        return None
    return conn.connection.dbapi_connection


def _bind(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime(SQLITE_DATETIME)
    return value


def _datetime(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value
