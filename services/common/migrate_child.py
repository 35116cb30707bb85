"""``python -m mlgrid_services.common.migrate_child``: one service's migrations in a process of
its own (see process_role.py). The request comes as one JSON line on stdin, so the store URI
(it may hold a password) stays off the command line; on failure the last line of stderr says
why and the exit status is 1."""

from __future__ import annotations

import json
import sys


def main() -> int:
    from mlgrid_services.common.sql import upgrade_database

    request = json.loads(sys.stdin.readline())
    try:
        upgrade_database(
            request["uri"],
            request["script_location"],
            request["version_table"],
            request["revision"],
        )
    except Exception as exc:  # reported to the service, which raises it as its start error
        first = (str(exc).splitlines() or [""])[0]
        print(f"{type(exc).__name__}: {first[:500]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
