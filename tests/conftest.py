"""Shared fixtures. Each area's fixtures live in tests/fixtures/<area>.py."""

# Before any fixture imports grpc: the tests' own servers and clients then move their bytes as
# every mlgrid process does (sdk/mlgrid/_grpc_io.py).
import mlgrid  # noqa: F401

pytest_plugins = [
    "fixtures.postgres",
    "fixtures.mysql",
    "fixtures.stack",
    "fixtures.s3",
    "fixtures.containers",
]
