"""``mlgrid artifacts log | list | download``: a run's files (or any artifact URI's).

Large transfers show a progress bar on stderr, so stdout stays clean for scripts.
"""

from __future__ import annotations

import posixpath
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import click

from mlgrid.artifacts import transfer
from mlgrid.cli._tables import (
    ErrorReportingGroup,
    output_option,
    print_json,
    print_table,
    tracking_uri_option,
)
from mlgrid.client import Client

#: Transfers at least this large get a progress bar.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


class ProgressBar:
    """A thread-safe byte counter drawn as ``[#####     ] 42% 84.0/200.0 MiB 310 MiB/s``."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, count: int) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._drawn >= 0.1 or self.done >= self.total:
                self._drawn = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(self.done / self.total, 1.0)
        filled = int(fraction * 30)
        rate = self.done / max(now - self._started, 1e-6) / 2**20
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{' ' * (30 - filled)}] {fraction:4.0%} "
            f"{self.done / 2**20:.1f}/{self.total / 2**20:.1f} MiB {rate:.0f} MiB/s"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _local_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remote_size(client: Client, root: str, path: str) -> int:
    """Bytes a download of ``path`` will bring (0 when unknown)."""
    tree = transfer.list_artifacts(client._transport, root, path, recursive=True)
    if tree or not path:
        return sum(f.file_size or 0 for f in tree)
    siblings = client.list_artifacts_at(root, posixpath.dirname(path))
    return next((f.file_size or 0 for f in siblings if f.path == path), 0)


def _artifact_root(client: Client, run_id: str | None, artifact_uri: str | None) -> str:
    if (run_id is None) == (artifact_uri is None):
        raise click.UsageError("pass exactly one of --run-id or --artifact-uri")
    if run_id is not None:
        return client.artifacts.run_artifact_uri(run_id)
    from mlgrid.artifacts import resolve_artifact_uri

    assert artifact_uri is not None
    root, path = resolve_artifact_uri(artifact_uri, client)
    if path:
        return f"{root.rstrip('/')}/{path}"
    return root


def _source_options(func):  # type: ignore[no-untyped-def]
    func = click.option("--artifact-uri", "-u", default=None, help="Any artifact URI.")(func)
    return click.option("--run-id", "-r", default=None, help="The run whose artifacts to use.")(
        func
    )


@click.group(cls=ErrorReportingGroup)
def artifacts() -> None:
    """Upload, list and download artifacts."""


@artifacts.command("log")
@click.argument("local_path", type=click.Path(exists=True, path_type=Path))
@_source_options
@click.option("--artifact-path", "-a", default=None, help="Directory inside the artifacts.")
@tracking_uri_option
def log(
    local_path: Path,
    run_id: str | None,
    artifact_uri: str | None,
    artifact_path: str | None,
    tracking_uri: str | None,
) -> None:
    """Upload LOCAL_PATH (a file, or a directory's files) to a run or artifact URI."""
    client = Client(tracking_uri)
    root = _artifact_root(client, run_id, artifact_uri)
    size = _local_size(local_path)
    bar = ProgressBar(size, f"uploading {local_path.name}") if size >= PROGRESS_MIN_BYTES else None
    try:
        if local_path.is_dir():
            client.log_artifacts_at(root, local_path, artifact_path, progress=bar)
        else:
            client.log_artifact_at(root, local_path, artifact_path, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"Logged {local_path} to {root}" + (f" ({artifact_path})" if artifact_path else ""))


@artifacts.command("list")
@_source_options
@click.option("--artifact-path", "-a", default=None, help="Directory to list.")
@output_option
@tracking_uri_option
def list_command(
    run_id: str | None,
    artifact_uri: str | None,
    artifact_path: str | None,
    output: str,
    tracking_uri: str | None,
) -> None:
    """List the direct children of a directory of a run's artifacts (or an artifact URI)."""
    client = Client(tracking_uri)
    root = _artifact_root(client, run_id, artifact_uri)
    files = client.list_artifacts_at(root, artifact_path)
    if output == "json":
        print_json([{"path": f.path, "is_dir": f.is_dir, "file_size": f.file_size} for f in files])
        return
    rows = [[f.path + ("/" if f.is_dir else ""), "" if f.is_dir else f.file_size] for f in files]
    print_table(["path", "size"], rows)


@artifacts.command("download")
@_source_options
@click.option("--artifact-path", "-a", default=None, help="File or directory to download.")
@click.option(
    "--dst-path", "-d", default=None, type=click.Path(path_type=Path), help="Local directory."
)
@tracking_uri_option
def download(
    run_id: str | None,
    artifact_uri: str | None,
    artifact_path: str | None,
    dst_path: Path | None,
    tracking_uri: str | None,
) -> None:
    """Download a file or directory; prints the local path."""
    client = Client(tracking_uri)
    root = _artifact_root(client, run_id, artifact_uri)
    size = _remote_size(client, root, (artifact_path or "").strip("/"))
    bar = ProgressBar(size, "downloading") if size >= PROGRESS_MIN_BYTES else None
    try:
        # As MLflow's CLI: an artifact URI lands as dst/<its last segment>, a run path as dst/<path>.
        local = client.download_artifacts_at(
            root, artifact_path, dst_path, progress=bar, keep_root_name=artifact_uri is not None
        )
    finally:
        if bar is not None:
            bar.close()
    click.echo(local)
