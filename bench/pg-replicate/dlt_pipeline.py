"""dlt's run of one case: the sql_database source's sql_table with an incremental cursor on
systemmodstamp (dlt keeps the cursor in the destination's state) and a merge on the primary
key into DuckDB, with the pyarrow backend (dlt's fastest for a table like this one).

    python dlt_pipeline.py PG_URL DUCKDB_FILE PIPELINES_DIR
"""

import sys

import dlt
from dlt.sources.sql_database import sql_table

pg_url, duckdb_file, pipelines_dir = sys.argv[1:4]
table = sql_table(
    credentials=pg_url.replace("postgres://", "postgresql+psycopg2://").split("?")[0],
    schema="salesforce",
    table="opportunity",
    incremental=dlt.sources.incremental("systemmodstamp"),
    backend="pyarrow",
    chunk_size=100_000,
)
table.apply_hints(write_disposition="merge", primary_key="id")
pipeline = dlt.pipeline(
    pipeline_name="bench_pg_replicate",
    destination=dlt.destinations.duckdb(duckdb_file),
    dataset_name="orgm",
    pipelines_dir=pipelines_dir,
)
info = pipeline.run(table)
print(info)
