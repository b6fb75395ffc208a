"""A table or a query of any database SQLAlchemy speaks to, with bound parameters only.

Table names are checked as identifiers and quoted by SQLAlchemy, query values are bound by the
driver: nothing from config is ever formatted into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from fraudpipe.sources.base import SourceError, first_line, redact_url, require

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _split_table(name: str, where: str) -> tuple[str | None, str]:
    """("schema", "table") from "table" or "schema.table", refusing anything else."""
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise SourceError(
            where,
            f"data.table {name!r} is not a plain table name",
            "Use letters, digits and underscores (optionally schema.table), or set data.query instead.",
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


@dataclass(frozen=True)
class SqlSource:
    """Rows of ``table`` (every column) or of ``query`` (with ``query_params`` bound)."""

    url: str
    table: str | None = None
    query: str | None = None
    query_params: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "sql"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SqlSource:
        url = str(require(cfg, "url", "sql source"))
        source = cls(url, cfg.get("table"), cfg.get("query"), dict(cfg.get("query_params") or {}))
        if not source.query and not source.table:
            raise SourceError(source.where, "neither data.table nor data.query is set", "Set one of them.")
        return source

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
        schema, name = _split_table(str(self.table), self.where)
        return sa.select(sa.literal_column("*")).select_from(sa.table(name, schema=schema))

    def _engine(self) -> sa.Engine:
        try:
            url = make_url(self.url)
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise SourceError(
                self.where,
                f"data.url is not usable: {first_line(exc)}",
                "Give a SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db.",
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
        schema, name = _split_table(str(self.table), self.where)
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
