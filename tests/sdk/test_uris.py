"""One scheme policy for every URI mlgrid routes by (mlgrid.uris.uri_scheme)."""

from __future__ import annotations

import pytest

from mlgrid.uris import uri_scheme


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("s3://bucket/prefix", "s3"),
        ("S3://Bucket", "s3"),
        ("file:///data/artifacts", "file"),
        ("/data/mlruns", "file"),
        ("relative/dir", "file"),
        ("C:\\data\\runs", "file"),
        ("C:/data/runs", "file"),
        ("sqlite:///mlgrid.db", "sqlite"),
        ("postgresql://u@db/mlgrid", "postgresql"),
        ("postgresql+psycopg://u@db/mlgrid", "postgresql"),
        ("grpc://127.0.0.1:50051", "grpc"),
        ("my-plugin.store://x", "my-plugin.store"),
    ],
)
def test_scheme_of(uri: str, scheme: str) -> None:
    assert uri_scheme(uri) == scheme
