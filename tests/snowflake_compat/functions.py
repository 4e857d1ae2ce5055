"""Snowflake functions fakesnow 0.12 cannot run, rewritten by the proxy into forms it can, with
the meaning Snowflake documents:

- `TO_NUMBER(<expr>, 'XXXXXXXX')`: a format of hexadecimal digits only ("X: hexadecimal digit",
  SQL format models, numeric formats) reads the text as a hexadecimal number; fakesnow raises
  NotImplementedError for any format argument. Rewritten to `CAST('0x' || <expr> AS BIGINT)`,
  which DuckDB reads as hex. Only formats of X's (up to 15, so that the value fits a BIGINT) are
  rewritten; anything else goes to fakesnow as it came.

A statement without such a call is forwarded untouched (the rewrite parses and regenerates the
SQL, so it is only done when needed).
"""

from __future__ import annotations

import re

HEX_FORMAT = re.compile(r"TO_NUMBER\s*\(.*'X{1,15}'\s*\)", re.IGNORECASE | re.DOTALL)


def emulate(sql: str) -> str | None:
    """The statement rewritten for fakesnow, or None when it needs nothing."""
    if not HEX_FORMAT.search(sql):
        return None
    import sqlglot
    from sqlglot import exp

    def hex_number(node):
        if isinstance(node, exp.ToNumber):
            fmt = node.args.get("format")
            text = fmt.this if isinstance(fmt, exp.Literal) and fmt.is_string else ""
            if text and len(text) <= 15 and set(text.upper()) == {"X"}:
                return exp.cast(exp.DPipe(this=exp.Literal.string("0x"), expression=node.this.copy()), "BIGINT")
        return node

    tree = sqlglot.parse_one(sql, read="snowflake")
    return tree.transform(hex_number).sql(dialect="snowflake")
