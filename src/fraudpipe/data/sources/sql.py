"""A table or a query of a SQLite or PostgreSQL database, with bound parameters only, read only.

Table names are checked as identifiers and quoted by SQLAlchemy, query values are bound by the
driver (a list binds as an expanding ``IN :name``): nothing from config is ever formatted into
SQL text. The source never writes, and that is the database's guarantee, not a parser's: the
query goes to the server as one statement (SQLite's driver refuses more; psycopg prepares every
query, and PostgreSQL's extended protocol refuses more), in a session that cannot write from its
start (SQLite opened ``mode=ro`` with ``query_only``; PostgreSQL with
``default_transaction_read_only`` set at connection, so even a COMMIT leaves it read-only). Only
the drivers that can promise this are accepted. The query check below gives an early, clearer
message for the plain mistakes (``DROP TABLE``) at config time; nothing relies on it.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import pandas as pd
from pydantic import Field, field_validator, model_validator

from fraudpipe.config import rule_error
from fraudpipe.data.sources.base import SourceConfig, SourceError, first_line, redact_url

if TYPE_CHECKING:  # SQLAlchemy is imported where a SQL source is used: every config check imports this module
    import sqlalchemy as sa

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

#: URL drivers (``dialect+driver``) whose sessions the source can make read-only on the server's side.
READ_ONLY_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite", "postgresql+psycopg"})
_DRIVER_RULE = (
    "must be sqlite:///path or postgresql+psycopg://user@host:5432/db (the drivers the SQL source can hold read-only)"
)
#: libpq options that make every transaction of the session read-only, from its first one.
_READ_ONLY_OPTIONS = "-c default_transaction_read_only=on"

#: What a query may not contain, as a word outside literals, comments and quoted names: statements
#: and clauses that write, lock or change the session (``SELECT ... INTO`` creates a table).
_WRITE_WORDS = frozenset(
    (  # noqa: SIM905 - a list of words reads best as words
        "insert update delete merge upsert drop create alter truncate rename grant revoke into attach "
        "detach pragma vacuum reindex analyze copy call exec execute do lock set reset begin commit rollback "
        "savepoint release load import"
    ).split()
)
#: Literals, quoted names and comments: their text is data, not SQL.
_NOT_SQL = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?\*/""", re.DOTALL)


def read_only_problem(query: str) -> str | None:
    """Why ``query`` is not a single read-only SELECT statement, or None when it is one.

    Only for an early message at config time: it does not know every dialect's quoting (dollar
    quotes, ``E''`` strings), so the read-only guarantee is the connection's, not this check's.
    The rule is deliberately narrow: one statement that starts with SELECT or WITH (or a
    parenthesis) and names no word that writes. A query that needs more is a job for the
    database (a view), not for the pipeline's reader.
    """
    sql = _NOT_SQL.sub(" ", query).strip()
    if ";" in sql.rstrip("; \t\r\n"):
        return "holds more than one statement"
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", sql.lstrip("( \t\r\n"))
    if not words:
        return "holds no statement"
    if words[0].lower() not in ("select", "with"):
        return f"is a {words[0].upper()} statement"
    writes = sorted({w.upper() for w in words if w.lower() in _WRITE_WORDS})
    if writes:
        return f"contains {', '.join(writes)}"
    return None


class SqlConfig(SourceConfig):
    """conf/data/sql.yaml: a table or a query; `fraudpipe snapshot` copies it into ``snapshot``."""

    source: Literal["sql"]
    url: str
    table: str | None
    query: str | None
    #: bound by the driver, never formatted into the query
    query_params: dict[str, Any]
    snapshot: str = Field(min_length=1)
    datetime_format: str | None

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, url: str) -> str:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        try:
            parsed = make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            raise rule_error(
                "must be a SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db", redact_url(url)
            ) from None
        if parsed.drivername not in READ_ONLY_DRIVERS:
            raise rule_error(_DRIVER_RULE, redact_url(url))
        return url

    @field_validator("table")
    @classmethod
    def _plain_table_name(cls, table: str | None) -> str | None:
        if table is not None and _split_table(table) is None:
            raise ValueError("must be a plain table name (letters, digits, underscores; optionally schema.table)")
        return table

    @field_validator("query")
    @classmethod
    def _reads_only(cls, query: str | None) -> str | None:
        problem = read_only_problem(query) if query is not None else None
        if problem:
            raise ValueError(
                "must be one SELECT (or WITH ... SELECT) statement: the SQL source only reads, "
                f"and this query {problem}"
            )
        return query

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlConfig:
        if not self.table and not self.query:
            raise rule_error("must be set when table is null (or set table)", self.query, key="query")
        return self


def _split_table(name: str) -> tuple[str | None, str] | None:
    """("schema", "table") from "table" or "schema.table"; None for anything else."""
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        return None
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


@dataclass(frozen=True)
class SqlSource:
    """Rows of ``table`` (every column) or of ``query`` (with ``query_params`` bound)."""

    url: str
    table: str | None
    query: str | None
    query_params: Mapping[str, Any]
    kind: str = "sql"

    @classmethod
    def from_config(cls, config: SqlConfig) -> SqlSource:
        return cls(config.url, config.table, config.query, config.query_params)

    @property
    def where(self) -> str:
        return f"sql source {redact_url(self.url)}"

    def _statement(self) -> sa.Executable:
        import sqlalchemy as sa

        if self.query:
            params: list[sa.BindParameter[Any]] = [
                sa.bindparam(name, list(value), expanding=True)
                if isinstance(value, (list, tuple))
                else sa.bindparam(name, value)
                for name, value in self.query_params.items()
            ]
            try:
                return sa.text(self.query).bindparams(*params)
            except sa.exc.ArgumentError as exc:
                raise SourceError(
                    self.where,
                    f"data.query_params do not match the query: {exc}",
                    "Name each parameter :like_this in data.query.",
                ) from None
        schema, name = self._table()
        return sa.select(sa.literal_column("*")).select_from(sa.table(name, schema=schema))

    def _table(self) -> tuple[str | None, str]:
        parts = _split_table(str(self.table))
        assert parts is not None, "SqlConfig checks the table name"
        return parts

    def _engine(self) -> sa.Engine:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        try:
            url = make_url(self.url)
            driver_ok = url.drivername in READ_ONLY_DRIVERS
            engine = _read_only_engine(url) if driver_ok else None
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise SourceError(
                self.where,
                f"no database driver for data.url: {first_line(exc)}",
                "Install the driver the URL names (e.g. psycopg for postgresql+psycopg), or fix data.url.",
            ) from None
        if engine is None:
            raise SourceError(
                self.where,
                f"data.url names a driver the SQL source cannot hold read-only ({url.drivername})",
                "Use sqlite:///path or postgresql+psycopg://user@host:5432/db.",
            )
        database = url.database or ""
        on_disk = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        if on_disk and not database.startswith("file:") and not Path(database).is_file():
            engine.dispose()  # SQLite would create an empty file, then report a missing table
            raise SourceError(
                self.where,
                "the SQLite database file does not exist",
                "Check data.url (relative paths are resolved from the repository root).",
            )
        return engine

    @contextlib.contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection that cannot write (see ``_read_only_engine``), in a read-only transaction."""
        import sqlalchemy as sa

        engine = self._engine()
        try:
            try:
                connection = engine.connect()
                if connection.dialect.name == "postgresql":
                    connection = connection.execution_options(postgresql_readonly=True)
            except sa.exc.DBAPIError as exc:
                raise SourceError(
                    self.where,
                    f"cannot connect to the database: {first_line(exc)}",
                    "Check that the server is up and reachable, and the host, port, database and user in data.url.",
                ) from None
            with connection:
                yield connection
        finally:
            engine.dispose()

    def read(self) -> pd.DataFrame:
        import sqlalchemy as sa

        statement = self._statement()
        with self.connect() as connection:
            if self.table and not self.query:
                self._check_table(connection)
            try:
                return pd.read_sql_query(statement, connection)
            except (sa.exc.StatementError, sa.exc.ResourceClosedError, pd.errors.DatabaseError) as exc:
                exc = exc.__cause__ if isinstance(exc.__cause__, sa.exc.SQLAlchemyError) else exc
                what = "the query failed" if self.query else f"reading table {self.table!r} failed"
                why = "it returns no rows" if isinstance(exc, sa.exc.ResourceClosedError) else first_line(exc)
                raise SourceError(
                    self.where,
                    f"{what}: {why}",
                    "Check data.query (one SELECT statement: the source only reads), data.query_params "
                    "and that the tables it names exist.",
                ) from None

    def _check_table(self, connection: sa.Connection) -> None:
        import sqlalchemy as sa

        schema, name = self._table()
        inspector = sa.inspect(connection)
        if not inspector.has_table(name, schema=schema):
            tables = sorted(inspector.get_table_names(schema=schema))
            raise SourceError(
                self.where,
                f"table {self.table!r} does not exist (tables there: {', '.join(tables) or 'none'})",
                "Set data.table to one of them, or data.query.",
            )

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return {}


def _read_only_engine(url: sa.URL) -> sa.Engine:
    """An engine whose sessions cannot write and run one statement per query.

    SQLite: the file opened ``mode=ro``, every connection ``PRAGMA query_only`` (in-memory
    databases too) and allowed no attached database; Python's sqlite3 refuses several statements.
    PostgreSQL (psycopg 3): ``prepare_threshold=0`` prepares every query, and a prepared
    statement holds one command (psycopg would send a query without parameters through the
    simple protocol, which runs several); ``default_transaction_read_only`` is set by the
    connection's options, after any the URL gives, so a COMMIT starts another read-only
    transaction.
    """
    import sqlalchemy as sa

    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(_read_only_url(url))
        sa.event.listen(engine, "connect", _sqlite_read_only)
        return engine
    given = url.query.get("options", ())
    options = " ".join([given] if isinstance(given, str) else given)
    connect_args = {"options": f"{options} {_READ_ONLY_OPTIONS}".strip(), "prepare_threshold": 0}
    return sa.create_engine(url, connect_args=connect_args)


def _sqlite_read_only(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    """No write to any database of the connection, and no other file: ATTACH and VACUUM INTO
    would create one, so the connection may attach none."""
    dbapi_connection.execute("PRAGMA query_only = ON")
    dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)


def _read_only_url(url: sa.URL) -> sa.URL:
    """A SQLite file opened read-only (a SQLite URI with ``mode=ro``); other URLs as they are.

    An in-memory database has nothing to protect; a ``file:`` URI the user wrote gets ``mode=ro``.
    """
    if url.get_backend_name() != "sqlite":
        return url
    database = url.database or ""
    if database in ("", ":memory:"):
        return url
    if not database.startswith("file:"):
        database = "file:" + quote(Path(database).resolve().as_posix(), safe="/:")
    return url.set(database=database).update_query_dict({"mode": "ro", "uri": "true"})
