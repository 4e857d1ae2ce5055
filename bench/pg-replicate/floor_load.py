"""The floor's loading half: CSV from stdin (psql's COPY … TO STDOUT) into a new DuckDB table,
the columns typed as given and nothing else done.

    psql -c "COPY (SELECT …) TO STDOUT (FORMAT csv)" | python floor_load.py FILE TABLE 'name:TYPE,…'
"""

import sys

import duckdb

file, table, spec = sys.argv[1:4]
columns = ", ".join(
    f"'{name}': '{kind}'" for name, kind in (item.split(":", 1) for item in spec.split(";"))
)
duckdb.connect(file).execute(
    f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_csv('/dev/stdin', header=false, "
    f"auto_detect=false, columns={{{columns}}})"
)
