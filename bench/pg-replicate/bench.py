"""pg-replicate against Sling, dlt and the physical floor on one table shaped like Heroku
Connect's opportunity (22 columns of mixed types), from a local PostgreSQL into DuckDB, every
tool in the same run on the same 2 cores. Run by run.sh (make bench-pg-replicate).

Cases, each on every tool in turn:
  1. the initial copy;
  2. an incremental run after 1% of the rows changed;
  3. a run after 0.1% of the rows were deleted: pg-replicate reconciles the keys (--reconcile),
     the others run incrementally, which is how they replicate a key-based source.
The floor is psql's `COPY (SELECT …) TO STDOUT` piped into DuckDB's CSV reader: the rows moved,
and nothing else (case 2: the changed rows; case 3: every key, what finding deletes needs
without buckets). After each case every tool's table is compared with the source's live rows,
`EXCEPT ALL` both ways. Then pg-replicate's initial copy of a 4× larger table, for peak memory.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

COLUMNS = [
    ("id", "serial PRIMARY KEY", "INTEGER"),
    ("sfid", "varchar(18) UNIQUE", "VARCHAR"),
    ("accountid", "varchar(18)", "VARCHAR"),
    ("ownerid", "varchar(18)", "VARCHAR"),
    ("name", "varchar(120)", "VARCHAR"),
    ("type", "varchar(255)", "VARCHAR"),
    ("stagename", "varchar(255)", "VARCHAR"),
    ("leadsource", "varchar(255)", "VARCHAR"),
    ("forecastcategory", "varchar(40)", "VARCHAR"),
    ("amount", "double precision", "DOUBLE"),
    ("probability", "numeric(5,2)", "DECIMAL(5,2)"),
    ("expectedrevenue", "numeric(18,2)", "DECIMAL(18,2)"),
    ("closedate", "date", "DATE"),
    ("isclosed", "boolean", "BOOLEAN"),
    ("iswon", "boolean", "BOOLEAN"),
    ("isdeleted", "boolean NOT NULL DEFAULT false", "BOOLEAN"),
    ("description", "text", "VARCHAR"),
    ("nextstep", "varchar(255)", "VARCHAR"),
    ("createddate", "timestamp", "TIMESTAMP"),
    ("systemmodstamp", "timestamp", "TIMESTAMP"),
    ("_hc_lastop", "varchar(32)", "VARCHAR"),
    ("_hc_err", "text", "VARCHAR"),
]
# What the correctness check compares: the key, the replication key and fields of each type.
COMPARED = "id, sfid, name, stagename, amount, CAST(systemmodstamp AS TIMESTAMP) AS systemmodstamp, iswon, description"

FILL = """
INSERT INTO salesforce.opportunity (sfid, accountid, ownerid, name, type, stagename, leadsource,
    forecastcategory, amount, probability, expectedrevenue, closedate, isclosed, iswon, isdeleted,
    description, nextstep, createddate, systemmodstamp, _hc_lastop, _hc_err)
SELECT '006' || lpad(g::text, 15, '0'),
       '001' || lpad((g % 50000)::text, 15, '0'),
       '005' || lpad((g % 300)::text, 15, '0'),
       'Opportunity ' || g || ', "renewal"',
       (ARRAY['New Business', 'Renewal', 'Expansion'])[1 + g % 3],
       (ARRAY['Prospecting', 'Negotiation', 'Closed Won', 'Closed Lost'])[1 + g % 4],
       (ARRAY['Web', 'Partner', 'Referral', NULL])[1 + g % 4],
       'Pipeline',
       (g % 100000) * 1.5,
       (g % 101)::numeric(5,2),
       ((g % 100000) * 1.5 * (g % 101) / 100)::numeric(18,2),
       date '2026-01-01' + (g % 700),
       g % 4 >= 2,
       g % 4 = 2,
       false,
       CASE WHEN g % 10 = 0 THEN 'Line one' || chr(10) || 'line two, with a comma' END,
       'Call back',
       timestamp '2025-01-01' + g * interval '1 second',
       timestamp '2026-06-01' + g * interval '7 seconds' + (g % 1000) * interval '1 millisecond',
       'SYNCED',
       NULL
FROM generate_series(1, {rows}) AS g;
ANALYZE salesforce.opportunity;
"""
# Case 2: 1% of the rows change, later than anything read before.
CHANGE = """UPDATE salesforce.opportunity SET amount = amount + 1, stagename = 'Closed Won', iswon = true,
    systemmodstamp = timestamp '2027-01-01' + id * interval '1 millisecond' WHERE id % 100 = 7"""
# Case 3: 0.1% of the rows are deleted (Heroku Connect deletes what Salesforce hard-deletes).
DELETE = "DELETE FROM salesforce.opportunity WHERE id % 1000 = 3"


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work)
        self.peers = Path(args.peers_venv)
        self.results: dict[int, dict[str, tuple[float, int, int]]] = {}

    def psql(self, sql: str) -> str:
        out = subprocess.run(
            [self.args.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", self.args.pg_url, "-c", sql],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def create(self, rows: int) -> None:
        ddl = ",\n".join(f"{name} {pg}" for name, pg, _ in COLUMNS)
        self.psql("DROP SCHEMA IF EXISTS salesforce CASCADE; CREATE SCHEMA salesforce; "
                  f"CREATE TABLE salesforce.opportunity ({ddl});")
        self.psql(FILL.format(rows=rows))

    def timed(self, name: str, command: list[str], env: dict[str, str]) -> tuple[float, int]:
        """Wall seconds and peak RSS (kB, of the largest process) of `command`, which must succeed."""
        stats = self.work / f"{name}.time"
        log = self.work / f"{name}.log"
        with open(log, "w") as out:
            started = time.monotonic()
            code = subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", str(stats), *command],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            ).returncode
            seconds = time.monotonic() - started
        if code != 0:
            sys.exit(f"{name} failed (exit {code}); its output:\n{log.read_text()[-4000:]}")
        return seconds, int(stats.read_text().split()[-1])

    # ---- the tools --------------------------------------------------------------------------

    def ours(self, case: int) -> tuple[float, int]:
        env = {
            "PATH": os.environ["PATH"],
            "HEROKU_POSTGRESQL_URL": self.args.pg_url,
            "WAREHOUSE_PATH": str(self.work / "ours.duckdb"),
            "PG_REPLICATE_WORK_DIR": str(self.work),
            "LOG_FORMAT": "json",
        }
        extra = ["--reconcile", "opportunity"] if case == 3 else []
        return self.timed(f"ours-{case}", [self.args.job, *extra], env)

    def sling(self, case: int) -> tuple[float, int]:
        site = next((self.peers / "lib").glob("python3*/site-packages"))
        home = Path(self.args.sling_home)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "SLING_HOME_DIR": str(home / ".sling"),
            "DUCKDB_PATH": str(site / "duckdb_cli" / "duckdb"),
            "SLING_SRC": self.args.pg_url,
            "SLING_TGT": f"duckdb://{self.work / 'sling.duckdb'}",
        }
        binary = site / "sling_linux_amd64" / "bin" / "sling-linux-amd64"
        return self.timed(f"sling-{case}", [
            str(binary), "run", "--src-conn", "SLING_SRC", "--src-stream", "salesforce.opportunity",
            "--tgt-conn", "SLING_TGT", "--tgt-object", "orgm.opportunity", "--mode", "incremental",
            "--primary-key", "id", "--update-key", "systemmodstamp",
        ], env)

    def dlt(self, case: int) -> tuple[float, int]:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.work / "dlt-home"), "RUNTIME__LOG_LEVEL": "WARNING"}
        script = Path(__file__).with_name("dlt_pipeline.py")
        return self.timed(f"dlt-{case}", [
            str(self.peers / "bin" / "python"), str(script), self.args.pg_url,
            str(self.work / "dlt.duckdb"), str(self.work / "dlt-pipelines"),
        ], env)

    def floor(self, case: int) -> tuple[float, int]:
        if case == 1:
            select, columns = "SELECT * FROM salesforce.opportunity", COLUMNS
        elif case == 2:
            select = "SELECT * FROM salesforce.opportunity WHERE systemmodstamp >= timestamp '2027-01-01'"
            columns = COLUMNS
        else:
            select, columns = "SELECT id FROM salesforce.opportunity", COLUMNS[:1]
        spec = ";".join(f"{name}:{duck}" for name, _, duck in columns)
        loader = Path(__file__).with_name("floor_load.py")
        pipeline = " ".join([
            shlex.quote(self.args.psql), "-X", "-q", shlex.quote(self.args.pg_url), "-c",
            shlex.quote(f"COPY ({select}) TO STDOUT (FORMAT csv)"), "|",
            shlex.quote(str(self.peers / "bin" / "python")), shlex.quote(str(loader)),
            shlex.quote(str(self.work / "floor.duckdb")), f"t{case}", shlex.quote(spec),
        ])
        return self.timed(f"floor-{case}", ["bash", "-o", "pipefail", "-c", pipeline], dict(os.environ))

    # ---- the check --------------------------------------------------------------------------

    def check(self, case: int) -> dict[str, str]:
        """Each tool's live rows against the source's: rows missing and rows extra."""
        source_csv = self.work / "source.csv"
        with open(source_csv, "w") as out:
            subprocess.run(
                [self.args.psql, "-X", "-q", self.args.pg_url, "-c",
                 f"COPY (SELECT {COMPARED.replace('CAST(systemmodstamp AS TIMESTAMP) AS systemmodstamp', 'systemmodstamp')} "
                 "FROM salesforce.opportunity) TO STDOUT (FORMAT csv)"],
                check=True, stdout=out,
            )
        c = duckdb.connect()
        c.execute(
            f"CREATE TABLE src AS SELECT * FROM read_csv('{source_csv}', header=false, auto_detect=false, "
            "columns={'id': 'INTEGER', 'sfid': 'VARCHAR', 'name': 'VARCHAR', 'stagename': 'VARCHAR', "
            "'amount': 'DOUBLE', 'systemmodstamp': 'TIMESTAMP', 'iswon': 'BOOLEAN', 'description': 'VARCHAR'})"
        )
        found = {}
        for tool, file in (("pg-replicate", "ours"), ("Sling", "sling"), ("dlt", "dlt")):
            c.execute(f"ATTACH '{self.work / (file + '.duckdb')}' AS {file} (READ_ONLY)")
            columns = {r[0] for r in c.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                "AND schema_name = 'orgm' AND table_name = 'opportunity'", [file]).fetchall()}
            live = "_deleted_at IS NULL" if "_deleted_at" in columns else "true"
            target = f"(SELECT {COMPARED} FROM {file}.orgm.opportunity WHERE {live})"
            missing = c.execute(f"SELECT count(*) FROM (SELECT * FROM src EXCEPT ALL SELECT * FROM {target})").fetchone()[0]
            extra = c.execute(f"SELECT count(*) FROM (SELECT * FROM {target} EXCEPT ALL SELECT * FROM src)").fetchone()[0]
            if missing == 0 and extra == 0:
                found[tool] = "matches the source"
            else:
                what = []
                if missing:
                    what.append(f"{missing} source rows missing or stale")
                if extra:
                    what.append(f"{extra} rows the source does not have" + (" (deletes not seen)" if case == 3 else ""))
                found[tool] = "; ".join(what)
            c.execute(f"DETACH {file}")
        return found

    # ---- the run ----------------------------------------------------------------------------

    def run(self) -> None:
        rows = self.args.rows
        print(f"pg-replicate benchmark: {rows:,} rows of salesforce.opportunity ({len(COLUMNS)} columns), "
              f"PostgreSQL -> DuckDB, {os.cpu_count()} cores", flush=True)
        self.create(rows)
        size = self.psql("SELECT pg_size_pretty(pg_total_relation_size('salesforce.opportunity'))")
        print(f"source table: {size}", flush=True)
        for case, title, prepare in (
            (1, "initial copy", None),
            (2, "incremental, 1% of the rows changed", CHANGE),
            (3, "after 0.1% of the rows were deleted", DELETE),
        ):
            if prepare:
                self.psql(prepare)
            moved = {1: rows, 2: int(self.psql("SELECT count(*) FROM salesforce.opportunity WHERE id % 100 = 7")),
                     3: int(self.psql("SELECT count(*) FROM salesforce.opportunity"))}[case]
            measured = {}
            for tool, run in (("pg-replicate", self.ours), ("Sling 1.4.11", self.sling),
                              ("dlt 1.31", self.dlt), ("floor (psql → DuckDB)", self.floor)):
                measured[tool] = run(case)
                print(f"  case {case} {tool}: {measured[tool][0]:.2f} s", flush=True)
            self.results[case] = measured
            ours_s = measured["pg-replicate"][0]
            print(f"\nCase {case}: {title} ({moved:,} rows)")
            print(f"| tool | seconds | rows/s | peak RSS | pg-replicate is |")
            print(f"| --- | ---: | ---: | ---: | ---: |")
            for tool, (seconds, kb) in measured.items():
                ratio = "" if tool == "pg-replicate" else f"{seconds / ours_s:.1f}× as fast"
                print(f"| {tool} | {seconds:.2f} | {moved / seconds:,.0f} | {kb / 1024:.0f} MB | {ratio} |")
            for tool, verdict in self.check(case).items():
                print(f"  {tool}: {verdict}")
            print(flush=True)

        big = self.args.rss_rows
        print(f"Peak memory as the table grows: pg-replicate's initial copy of {rows:,} and {big:,} rows")
        self.create(big)
        (self.work / "ours.duckdb").unlink()
        seconds, kb = self.ours(4)
        small_kb = self.results[1]["pg-replicate"][1]
        print(f"| rows | seconds | peak RSS |\n| ---: | ---: | ---: |")
        print(f"| {rows:,} | {self.results[1]['pg-replicate'][0]:.2f} | {small_kb / 1024:.0f} MB |")
        print(f"| {big:,} | {seconds:.2f} | {kb / 1024:.0f} MB |")
        print(f"peak RSS ratio {kb / small_kb:.2f} for {big / rows:.0f}× the rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--psql", required=True)
    parser.add_argument("--job", required=True, help="the pg-replicate binary")
    parser.add_argument("--peers-venv", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--sling-home", required=True, help="HOME for Sling and its DuckDB CLI (extensions below)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rss-rows", type=int, default=4_000_000)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    Bench(args).run()


if __name__ == "__main__":
    main()
