#!/usr/bin/env python3
"""TPC-H reference answers for `ohm bench tpch --answers`, from DuckDB.

Generates dbgen's data with tpchgen-cli (both from pip: `pip install duckdb
tpchgen-cli`), loads it into DuckDB with the official schema (the same
`dss.ddl` Ohm runs), runs the 22 queries Ohm runs (`runtime/src/bench/tpch/
qNN.sql`) and writes each query's rows:

    OUT/data/<table>.tbl    the data, for `ohm bench tpch --data OUT/data`
    OUT/answers.tsv         '-- qN', then a row per line, tab-separated,
                            \\N for NULL, dates as YYYY-MM-DD

The one change DuckDB needs to the texts as written: it does not take the
interval precision of Q1's `interval '90' day (3)`, so `(3)` is dropped here.
"""

import argparse
import datetime
import decimal
import pathlib
import re
import subprocess
import sys

import duckdb

TABLES = ["region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]
HERE = pathlib.Path(__file__).resolve().parent
TEXTS = HERE.parent.parent / "runtime" / "src" / "bench" / "tpch"


def statements(script):
    """Statements of a script split at ';', with `--` comment lines dropped."""
    out = []
    for part in script.split(";"):
        body = "\n".join(l for l in part.splitlines() if not l.lstrip().startswith("--"))
        if body.strip():
            out.append(body)
    return out


def render(v):
    if v is None:
        return "\\N"
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, decimal.Decimal):
        return str(v)
    text = str(v)
    if "\t" in text or "\n" in text:
        sys.exit(f"a value holds a tab or newline, which answers.tsv cannot carry: {text!r}")
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sf", type=float, default=0.01, help="scale factor (default 0.01)")
    ap.add_argument("--out", type=pathlib.Path, required=True, help="directory to write data/ and answers.tsv")
    args = ap.parse_args()

    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tpchgen-cli", "-s", str(args.sf), "-o", str(data)], check=True)

    db = duckdb.connect()
    for stmt in statements((TEXTS / "dss.ddl").read_text()):
        db.execute(stmt)
    for t in TABLES:
        db.execute(f"COPY {t} FROM '{data / (t + '.tbl')}' (DELIMITER '|', HEADER false)")

    lines = []
    for q in range(1, 23):
        text = (TEXTS / f"q{q:02d}.sql").read_text()
        text = re.sub(r"(interval '\d+' day) \(3\)", r"\1", text)
        rows = None
        for stmt in statements(text):
            result = db.execute(stmt)
            if stmt.lstrip().lower().startswith("select"):
                rows = result.fetchall()
        if rows is None:
            sys.exit(f"q{q:02d}.sql has no SELECT")
        lines.append(f"-- q{q}")
        lines.extend("\t".join(render(v) for v in row) for row in rows)
    (args.out / "answers.tsv").write_text("\n".join(lines) + "\n")
    print(f"wrote {data} and {args.out / 'answers.tsv'} (sf {args.sf})")


if __name__ == "__main__":
    main()
