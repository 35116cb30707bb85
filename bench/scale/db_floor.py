"""What a durable commit costs PostgreSQL alone: the database's floor under the cpu phase's figure.

A ``log_metric`` is acknowledged once its statement has committed, and with the database's
default ``synchronous_commit=on`` a commit waits for its WAL record to be flushed. Before any
work of its own, each call therefore pays one round trip to PostgreSQL and one commit with its
flush. This measures exactly that and nothing else: one connection, the smallest durable write
(one integer into a one-column table), prepared once and sent through libpq one statement at a
time in autocommit, as the tracking service's hot statement is (services/common/pg_raw.py).

The answer is the CPU of this process (libpq's side: send, wait, read) and of the backend that
served it, per commit, in the database the target runs on, in the same run. Beside the bare
gRPC round trip (grpc_floor.py) it is what any durable Python service over PostgreSQL pays per
acknowledged call on this machine; mlgrid's figure minus both floors is what its own work costs.

``python -m bench.scale.db_floor DATABASE_URL [--commits N]`` prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import psutil
import psycopg
from psycopg import pq

from bench.scale.paired_cpu import paired_cpu

_WARMUP = 200


def measure(db_url: str, commits: int) -> dict[str, float]:
    """Client and database CPU (ms) and wall time (ms) per durable one-row commit, over
    ``commits``, in the database at ``db_url`` (a table of its own, dropped afterwards)."""
    table = f"bench_db_floor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        # The server's own durability setting stands (the targets run with it); reported.
        synchronous_commit = conn.execute("SHOW synchronous_commit").fetchone()
        conn.execute(f"CREATE TABLE {table} (n integer NOT NULL)")
        try:
            pgconn = conn.pgconn
            checked(pgconn.prepare(b"floor_insert", f"INSERT INTO {table} VALUES ($1)".encode()))
            backend = psutil.Process(conn.info.backend_pid)

            def insert_each(count: int) -> None:
                for n in range(count):
                    checked(pgconn.exec_prepared(b"floor_insert", [str(n).encode()]))

            insert_each(_WARMUP)
            cost = paired_cpu(backend, lambda: insert_each(commits))
        finally:
            conn.execute(f"DROP TABLE {table}")
    return {
        "client_ms": cost.here * 1000 / commits,
        "database_ms": cost.there * 1000 / commits,
        "total_ms": (cost.here + cost.there) * 1000 / commits,
        "wall_ms": cost.wall * 1000 / commits,
        "synchronous_commit": synchronous_commit[0] if synchronous_commit else "?",
    }


def checked(result: pq.abc.PGresult) -> None:
    """Raises the statement's error, if it failed."""
    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        message = result.error_message.decode(errors="replace").strip()
        raise RuntimeError(f"the floor's statement failed: {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale.db_floor", description=__doc__)
    parser.add_argument("db_url", help="a PostgreSQL database (postgresql://...)")
    parser.add_argument("--commits", type=int, default=5_000, help="timed commits")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.db_url, args.commits)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
