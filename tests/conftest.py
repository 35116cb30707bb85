"""Shared fixtures. Each area's fixtures live in tests/fixtures/<area>.py."""

pytest_plugins = [
    "fixtures.postgres",
    "fixtures.mysql",
    "fixtures.stack",
    "fixtures.s3",
    "fixtures.containers",
]
