"""Safe extraction of zip project archives.

Every entry is checked before anything is written: absolute names, drive letters, backslashes,
``..`` segments and symbolic links are refused, and the resolved target must stay inside the
destination ("zip slip"). One bad entry refuses the whole archive.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.size_cap import SizeCap

__all__ = ["extract_zip"]


def _check_entry(info: zipfile.ZipInfo, dest: Path, archive: str) -> None:
    name = info.filename
    mode = info.external_attr >> 16
    reason = None
    if stat.S_ISLNK(mode):
        reason = "is a symbolic link"
    elif name.startswith("/") or "\\" in name or "\x00" in name:
        reason = "has an absolute or non-portable name"
    elif len(name) > 1 and name[1] == ":":
        reason = "names a drive"
    elif ".." in PurePosixPath(name).parts:
        reason = "climbs out with '..'"
    else:
        target = (dest / name).resolve()
        if target != dest and dest not in target.parents:
            reason = "lands outside the extraction directory"
    if reason:
        raise InvalidParameterValue(
            f"zip archive {archive!r} refused: entry {name!r} {reason}; project archives may "
            "only hold relative files and directories"
        )


def extract_zip(
    archive: Path, dest: Path, shown_as: str | None = None, cap: SizeCap | None = None
) -> None:
    """Extracts ``archive`` into the (existing) directory ``dest`` after checking every entry
    (and, with ``cap``, their declared sizes: zipfile reads no more than an entry declares)."""
    label = shown_as or str(archive)
    dest = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = zf.infolist()
            for info in entries:
                _check_entry(info, dest, label)
            if cap is not None:
                cap.check_declared(sum(info.file_size for info in entries))
            for info in entries:
                zf.extract(info, dest)
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    # Keep executable bits (scripts), as unzip does.
                    (dest / info.filename).chmod(mode | 0o600)
    except zipfile.BadZipFile as exc:
        raise InvalidParameterValue(f"{label!r} is not a valid zip archive: {exc}") from exc
