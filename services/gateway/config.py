"""The gateway's config file (YAML), documented in services/gateway/README.md.

```yaml
discover:                 # backends asked what they serve (BackendInfoService)
  - 127.0.0.1:6001
backends:                 # explicit routes; they win over announced ones
  - {service: artifacts, scheme: s3, address: 10.0.0.5:7000}
  - {service: tracking, scheme: file-plugin, address: plugin-host:7001}
defaults:                 # where calls that name no scheme go
  tracking: 127.0.0.1:6001
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .methods import SERVICE_KEYS


class GatewayConfigError(ValueError):
    """The config file is malformed; the message names the entry and field at fault."""


@dataclass(frozen=True)
class RouteSpec:
    """One explicit route."""

    service: str
    scheme: str
    address: str


@dataclass
class GatewayConfig:
    """Routes and backends for a gateway."""

    #: Backend addresses asked for what they serve.
    discover: list[str] = field(default_factory=list)
    #: Explicit (service, scheme) -> address routes.
    backends: list[RouteSpec] = field(default_factory=list)
    #: service -> default backend address.
    defaults: dict[str, str] = field(default_factory=dict)


def _address(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise GatewayConfigError(
            f"{where}: 'address' must be a non-empty 'host:port' string, got {value!r}"
        )
    return value.strip()


def _service(value: Any, where: str) -> str:
    if value not in SERVICE_KEYS:
        raise GatewayConfigError(
            f"{where}: 'service' must be one of {', '.join(SERVICE_KEYS)}, got {value!r}"
        )
    return str(value)


def parse_config(data: Any, source: str = "gateway config") -> GatewayConfig:
    """Validates the parsed YAML document ``data``."""
    if data is None:
        return GatewayConfig()
    if not isinstance(data, dict):
        raise GatewayConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    unknown = set(data) - {"discover", "backends", "defaults"}
    if unknown:
        raise GatewayConfigError(
            f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "allowed: discover, backends, defaults"
        )
    discover = data.get("discover") or []
    if not isinstance(discover, list):
        raise GatewayConfigError(f"{source}: 'discover' must be a list of addresses")
    config = GatewayConfig(
        discover=[_address(a, f"{source}: discover[{i}]") for i, a in enumerate(discover)]
    )
    backends = data.get("backends") or []
    if not isinstance(backends, list):
        raise GatewayConfigError(f"{source}: 'backends' must be a list of routes")
    for i, entry in enumerate(backends):
        where = f"{source}: backends[{i}]"
        if not isinstance(entry, dict):
            raise GatewayConfigError(f"{where}: expected a mapping with service, scheme, address")
        extra = set(entry) - {"service", "scheme", "address"}
        if extra:
            raise GatewayConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))}"
            )
        scheme = entry.get("scheme")
        if not isinstance(scheme, str) or not scheme.strip():
            raise GatewayConfigError(
                f"{where}: 'scheme' must be a non-empty string, got {scheme!r}"
            )
        config.backends.append(
            RouteSpec(
                _service(entry.get("service"), where),
                scheme.strip().lower(),
                _address(entry.get("address"), where),
            )
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise GatewayConfigError(f"{source}: 'defaults' must map a service to an address")
    for name, address in defaults.items():
        where = f"{source}: defaults.{name}"
        config.defaults[_service(name, where)] = _address(address, where)
    return config


def load_config(path: str | Path) -> GatewayConfig:
    """Reads and validates a config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GatewayConfigError(f"cannot read gateway config {str(path)!r}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GatewayConfigError(f"gateway config {str(path)!r} is not valid YAML: {exc}") from exc
    return parse_config(data, source=str(path))
