"""A table or a query of any database SQLAlchemy speaks to, with bound parameters only.

Table names are checked as identifiers and quoted by SQLAlchemy, query values are bound by the
driver: nothing from config is ever formatted into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator
from sqlalchemy.engine import make_url

from fraudpipe.config import rule_error
from fraudpipe.sources.base import SourceConfig, SourceError, first_line, redact_url

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


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
        try:
            make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            raise rule_error("must be a SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db", redact_url(url)) from None
        return url

    @field_validator("table")
    @classmethod
    def _plain_table_name(cls, table: str | None) -> str | None:
        if table is not None and _split_table(table) is None:
            raise ValueError("must be a plain table name (letters, digits, underscores; optionally schema.table)")
        return table

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
        if self.query:
            try:
                return sa.text(self.query).bindparams(**self.query_params)
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
        try:
            url = make_url(self.url)
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise SourceError(
                self.where,
                f"no database driver for data.url: {first_line(exc)}",
                "Install the driver the URL names (e.g. psycopg for postgresql+psycopg), or fix data.url.",
            ) from None
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:"):
            if not Path(database).is_file():  # SQLite would create an empty file, then report a missing table
                engine.dispose()
                raise SourceError(
                    self.where,
                    "the SQLite database file does not exist",
                    "Check data.url (relative paths are resolved from the repository root).",
                )
        return engine

    def read(self) -> pd.DataFrame:
        statement = self._statement()
        engine = self._engine()
        try:
            try:
                connection = engine.connect()
            except sa.exc.DBAPIError as exc:
                raise SourceError(
                    self.where,
                    f"cannot connect to the database: {first_line(exc)}",
                    "Check that the server is up and reachable, and the host, port, database and user in data.url.",
                ) from None
            with connection:
                if self.table and not self.query:
                    self._check_table(connection)
                try:
                    return pd.read_sql_query(statement, connection)
                except (sa.exc.StatementError, pd.errors.DatabaseError) as exc:
                    exc = exc.__cause__ if isinstance(exc.__cause__, sa.exc.SQLAlchemyError) else exc
                    what = "the query failed" if self.query else f"reading table {self.table!r} failed"
                    raise SourceError(
                        self.where,
                        f"{what}: {first_line(exc)}",
                        "Check data.query, data.query_params and that the tables it names exist.",
                    ) from None
        finally:
            engine.dispose()

    def _check_table(self, connection: sa.Connection) -> None:
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
