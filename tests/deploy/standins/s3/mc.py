#!/opt/s3/bin/python3
"""The part of MinIO's `mc` that deploy/compose.yaml uses, for the S3 stand-in image.

    mc ready ALIAS                          exit 0 once the server answers
    mc mb [--ignore-existing] ALIAS/BUCKET  create a bucket

ALIAS is resolved as mc does: MC_HOST_<alias>=http://ACCESS:SECRET@host:port, and mc's own
configuration names "local" http://localhost:9000 (MinIO's image health check relies on it).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from urllib.parse import SplitResult, unquote, urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def _alias(alias: str) -> SplitResult:
    raw = os.environ.get(f"MC_HOST_{alias}")
    if not raw and alias == "local":
        raw = "http://localhost:9000"
    if not raw:
        raise SystemExit(f"mc stand-in: MC_HOST_{alias} is not set")
    return urlsplit(raw)


def _ready(alias: str) -> bool:
    """The server answers HTTP (any status: readiness needs no credentials, as in MinIO)."""
    url = _alias(alias)
    try:
        urllib.request.urlopen(f"{url.scheme}://{url.hostname}:{url.port}/", timeout=3)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _client(alias: str):  # type: ignore[no-untyped-def]
    url = _alias(alias)
    return boto3.client(
        "s3",
        endpoint_url=f"{url.scheme}://{url.hostname}:{url.port}",
        aws_access_key_id=unquote(url.username or ""),
        aws_secret_access_key=unquote(url.password or ""),
        region_name="us-east-1",
    )


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "ready":
        if _ready(argv[1]):
            print(f"The cluster '{argv[1]}' is ready")
            return 0
        print(f"mc stand-in: {argv[1]} does not answer yet", file=sys.stderr)
        return 1
    if argv and argv[0] == "mb":
        ignore_existing = "--ignore-existing" in argv[1:]
        targets = [a for a in argv[1:] if not a.startswith("-")]
        if len(targets) == 1 and "/" in targets[0]:
            alias, bucket = targets[0].split("/", 1)
            try:
                _client(alias).create_bucket(Bucket=bucket)
            except BotoCoreError as exc:
                print(f"mc stand-in: cannot reach {alias}: {exc}", file=sys.stderr)
                return 1
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if not (
                    ignore_existing and code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
                ):
                    print(f"mc stand-in: cannot make {targets[0]}: {code}", file=sys.stderr)
                    return 1
            print(f"Bucket created successfully `{targets[0]}`.")
            return 0
    print("usage: mc ready ALIAS | mc mb [--ignore-existing] ALIAS/BUCKET", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
