"""Temporary tables named with their database, which fakesnow 0.12 cannot create.

Snowflake documents that `CREATE TEMPORARY TABLE db.schema.t` creates `t` in that schema for
the session: it is dropped when the session ends. dbt's incremental models on Snowflake build
their changes that way (`create or replace temporary table <db>.<schema>.<model>__dbt_tmp`).
fakesnow hands the statement to DuckDB, whose temporary tables live only in its own `temp`
catalog, and DuckDB refuses a temporary table named with another database.

Emulated: the table is created as an ordinary one where the statement names it, recorded with
its session, and dropped when the session ends (the client's logout). Not emulated: other
sessions can see it while it lives, and it does not hide a permanent table of the same name
from its own session (dbt names its work tables so that neither matters).
"""

from __future__ import annotations

import re

# CREATE [OR REPLACE] [LOCAL | GLOBAL] TEMP[ORARY] TABLE [IF NOT EXISTS] db.schema.name ...
CREATE_TEMPORARY = re.compile(
    r"^(?P<head>\s*create\s+(?:or\s+replace\s+)?)(?:local\s+|global\s+)?temp(?:orary)?\s+"
    r"(?P<table>table\s+(?:if\s+not\s+exists\s+)?)(?P<name>(?:\"[^\"]+\"|[A-Za-z_][\w$]*)"
    r"(?:\.(?:\"[^\"]+\"|[A-Za-z_][\w$]*)){2})(?=[\s(]|$)",
    re.IGNORECASE,
)


def emulate(sql: str) -> tuple[str, str] | None:
    """The statement rewritten to create an ordinary table, and the table's name; None when the
    statement is not such a CREATE (a temporary table with a shorter name passes through)."""
    m = CREATE_TEMPORARY.match(sql)
    if m is None:
        return None
    rewritten = f"{m['head']}{m['table']}{m['name']}" + sql[m.end():]
    return rewritten, m["name"]
