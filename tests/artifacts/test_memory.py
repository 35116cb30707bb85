"""The artifacts service's memory stays flat while a large file streams through it."""

from __future__ import annotations

from pathlib import Path

from mlgrid.artifacts import transfer
from mlgrid.transport import Transport

from .conftest import make_file, sha256_of
from .measure import RssWatcher, service_process

MiB = 1024 * 1024


def test_a_200_mib_transfer_grows_the_service_by_less_than_64_mib(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    source = tmp_path / "big.bin"
    expected = make_file(source, 200 * MiB)
    with service_process(root) as (target, pid):
        transport = Transport(f"grpc://{target}")
        try:
            with RssWatcher(pid) as upload:
                transfer.upload_file(transport, root.as_uri(), source, "big.bin")
            with RssWatcher(pid) as download:
                transfer.download(transport, root.as_uri(), "big.bin", tmp_path / "back.bin")
        finally:
            transport.close()
    assert sha256_of(tmp_path / "back.bin") == expected
    assert upload.growth_mib < 64, f"upload grew the service by {upload.growth_mib:.1f} MiB"
    assert download.growth_mib < 64, f"download grew the service by {download.growth_mib:.1f} MiB"
