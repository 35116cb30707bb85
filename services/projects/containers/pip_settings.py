"""The host's package-index settings, handed to pip inside an image build.

pip in a build container sees none of the host's configuration: not the index (a mirror, a
proxy), nor the CA bundle of a TLS-intercepting path, so it fails where the host's pip works.
The build gets them as files of a builder stage (see images.py): a pip.conf with the host's
index settings and, when the host names one, its CA bundle. They never reach the final image.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

__all__ = ["BuildPipSettings", "host_pip_settings"]

#: pip options copied into the build (anything else, e.g. find-links to host paths, is not).
_COPIED = ("index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout", "retries")
_CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


class BuildPipSettings:
    """pip.conf text and the CA bundle (bytes, or None) for a build."""

    def __init__(self, pip_conf: str, ca_bundle: bytes | None) -> None:
        self.pip_conf = pip_conf
        self.ca_bundle = ca_bundle


def _config_files() -> list[Path]:
    """pip's configuration files in the order pip reads them (later ones win)."""
    files = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf")]
    home = Path.home()
    files += [home / ".pip" / "pip.conf", home / ".config" / "pip" / "pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return files


def _remote_urls(value: str) -> str:
    """Index URLs pip in a container can reach (file:// and bare paths name host files)."""
    return " ".join(url for url in value.split() if url.startswith(("http://", "https://")))


def host_pip_settings() -> BuildPipSettings:
    """The host's index settings (config files, then ``PIP_*`` variables) and CA bundle."""
    settings: dict[str, str] = {}
    ca_path: str | None = None
    for path in _config_files():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except (configparser.Error, OSError):
            continue
        for section in ("global", "install"):
            if not parser.has_section(section):
                continue
            for key in _COPIED:
                if parser.has_option(section, key):
                    settings[key] = parser.get(section, key)
            if parser.has_option(section, "cert"):
                ca_path = parser.get(section, "cert")
    for key in _COPIED:
        raw = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if raw:
            settings[key] = raw
    for variable in _CA_VARIABLES:
        if os.environ.get(variable):
            ca_path = os.environ[variable]
            break
    for key in ("index-url", "extra-index-url"):
        if key in settings:
            settings[key] = _remote_urls(settings[key])
            if not settings[key]:
                del settings[key]
    lines = ["[global]"] + [f"{key} = {value}" for key, value in sorted(settings.items())]
    ca_bundle = None
    if ca_path:
        try:
            ca_bundle = Path(ca_path).read_bytes()
        except OSError:
            ca_bundle = None
    return BuildPipSettings("\n".join(lines) + "\n", ca_bundle)
