#!/usr/bin/env python3
"""Fills in the expected answers of a sqllogictest file from PostgreSQL.

The files in tests/slt hold Ohm's own SQL tests for what PostgreSQL defines
(dates, times, intervals, time zones, constraints). Their answers are not
written by hand: this script runs every record against a real PostgreSQL
(session TimeZone UTC, DateStyle ISO, IntervalStyle postgres, as Ohm) and
rewrites each query's expected values, formatted the way `ohm slt` prints
them (one value per line; NULL; (empty); booleans as 1/0 in I columns;
R columns with three decimals; rowsort/valuesort as the C runner sorts).
A `statement ok` that fails there, or a `statement error` that succeeds,
stops the script: the file would not test PostgreSQL's semantics.

    python3 tests/slt/pg_expect.py tests/slt/dates.test [...] \
        --psql "psql -h /tmp/pgs -p 5499 -U postgres"
"""
import argparse
import shlex
import subprocess
import sys

SEP_FIELD = "\x1f"
SEP_ROW = "\x1e"


def records(text):
    """Splits a file into (header, sql, rest) blocks separated by blank lines."""
    blocks, cur = [], []
    for line in text.split("\n"):
        if line.strip() == "":
            if cur:
                blocks.append(cur)
                cur = []
        else:
            cur.append(line)
    if cur:
        blocks.append(cur)
    return blocks


def run(psql, db, sql):
    cmd = shlex.split(psql) + ["-d", db, "-X", "-q", "-A", "-t", "-F", SEP_FIELD, "-R", SEP_ROW,
                               "-P", "null=NULL", "-v", "ON_ERROR_STOP=1"]
    env_sql = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres';\n" + sql
    p = subprocess.run(cmd, input=env_sql, capture_output=True, text=True)
    return p.returncode == 0, p.stdout, p.stderr


def fmt(value, ty):
    if value == "NULL":
        return "NULL"
    if ty == "I" and value in ("t", "f"):
        return "1" if value == "t" else "0"
    if ty == "R":
        return "%.3f" % float(value)
    if value == "":
        return "(empty)"
    return value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--psql", default="psql -h /tmp/pgs -p 5499 -U postgres")
    args = ap.parse_args()
    for path in args.files:
        db = "slt_expect"
        for stmt in (f"DROP DATABASE IF EXISTS {db}", f"CREATE DATABASE {db}"):
            ok, _, err = run(args.psql, "postgres", stmt)
            if not ok:
                sys.exit(f"{stmt}: {err}")
        out = []
        text = open(path).read()
        for block in records(text):
            # Comment lines directly above a record belong to it.
            notes = []
            while block and block[0].startswith("#"):
                notes.append(block.pop(0))
            if not block:
                out.append("\n".join(notes))
                continue
            head = block[0].split()
            if head[0] in ("statement", "query"):
                try:
                    sep = block.index("----")
                except ValueError:
                    sep = len(block)
                sql = "\n".join(block[1:sep])
                ok, stdout, err = run(args.psql, db, sql + ";")
                if head[0] == "statement":
                    want_ok = head[1] == "ok"
                    if ok != want_ok:
                        sys.exit(f"{path}: {' '.join(head)} but PostgreSQL says "
                                 f"{'ok' if ok else err.strip()}:\n{sql}")
                    out.append("\n".join(notes + block))
                    continue
                if head[1] == "error":
                    if ok:
                        sys.exit(f"{path}: query error but PostgreSQL answers:\n{sql}")
                    out.append("\n".join(notes + block))
                    continue
                if not ok:
                    sys.exit(f"{path}: query fails in PostgreSQL: {err.strip()}\n{sql}")
                types = head[1]
                sort = head[2] if len(head) > 2 else "nosort"
                # psql ends its output with a newline after the last row.
                if stdout.endswith("\n"):
                    stdout = stdout[:-1]
                rows = [r.split(SEP_FIELD) for r in stdout.split(SEP_ROW) if r != ""]
                for r in rows:
                    if len(r) != len(types):
                        sys.exit(f"{path}: {len(r)} columns but types {types}:\n{sql}")
                rows = [[fmt(v, t) for v, t in zip(r, types)] for r in rows]
                if sort == "rowsort":
                    rows.sort()
                values = [v for r in rows for v in r]
                if sort == "valuesort":
                    values.sort()
                out.append("\n".join(notes + block[:sep] + ["----"] + values))
            elif head[0] in ("hash-threshold", "halt", "skipif", "onlyif"):
                out.append("\n".join(notes + block))
            # Anything else is left over from an older answer: dropped.
        open(path, "w").write("\n\n".join(out) + "\n")
        print(f"{path}: {len(out)} records checked against PostgreSQL")


if __name__ == "__main__":
    main()
