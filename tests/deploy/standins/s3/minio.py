#!/opt/s3/bin/python3
"""`minio server DIR` for the S3 stand-in image: moto's S3 server on port 9000.

Reads the root credentials the way MinIO does (MINIO_ROOT_USER / MINIO_ROOT_PASSWORD, or the
*_FILE variables naming files) and refuses to start without them, so a compose file that forgets
them fails here as it would with MinIO. moto itself accepts any credentials.
"""

from __future__ import annotations

import os
import sys


def _setting(name: str) -> str:
    path = os.environ.get(f"{name}_FILE")
    if path:
        with open(path) as handle:
            return handle.read().strip()
    return os.environ.get(name, "")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "server":
        print("usage: minio server DIR (the stand-in serves only this)", file=sys.stderr)
        return 2
    for name in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        if not _setting(name):
            print(f"minio stand-in: {name} (or {name}_FILE) is not set", file=sys.stderr)
            return 1
    os.makedirs(argv[1], exist_ok=True)
    server = "/opt/s3/bin/moto_server"
    os.execv(server, [server, "--host", "0.0.0.0", "--port", "9000"])
    return 1  # not reached: execv replaces the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
