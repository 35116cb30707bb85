"""TLS on the gateway's three ports (gRPC, tunnels, MLflow's REST API), from PEM files.

One :class:`TlsSettings` names the certificate chain, its key and, for mutual TLS, the CA whose
client certificates are accepted. The same files serve every port, so a client that trusts the
gateway on one port trusts it on all, and with mutual TLS no port lets a client without a
certificate in: the gRPC port through gRPC's own TLS, the tunnel and REST ports through
:meth:`TlsSettings.server_context` (Python's ``ssl``).

The files are read and checked once at start: a missing file, a file without a certificate or
key, or a key that does not belong to the certificate stops the gateway with a message naming
the setting (``--tls-cert`` / ``MLGRID_GATEWAY_TLS_CERT``, …). Certificates are not reloaded
while the gateway runs; rotating them is a restart (a rolling one behind a load balancer).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from mlgrid import environment as env


class TlsConfigError(ValueError):
    """The TLS files are missing or do not fit together; the message names the setting."""


#: What each setting is called on the command line and in the environment.
_CERT = "--tls-cert / MLGRID_GATEWAY_TLS_CERT"
_KEY = "--tls-key / MLGRID_GATEWAY_TLS_KEY"
_CLIENT_CA = "--tls-client-ca / MLGRID_GATEWAY_TLS_CLIENT_CA"


def _read_pem(path: Path, setting: str, marker: bytes, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{setting}: cannot read {str(path)!r}: {exc.strerror}") from None
    if marker not in data:
        raise TlsConfigError(f"{setting}: {str(path)!r} holds no PEM {what}")
    return data


@dataclass(frozen=True)
class TlsSettings:
    """The gateway's certificate and key, and the client CA that turns on mutual TLS."""

    cert_file: Path
    key_file: Path
    #: CA bundle of accepted client certificates; None: clients need no certificate.
    client_ca_file: Path | None = None

    @property
    def mutual(self) -> bool:
        """Whether every client must present a certificate the client CA signed."""
        return self.client_ca_file is not None

    @classmethod
    def from_files(
        cls, cert: str | None, key: str | None, client_ca: str | None = None
    ) -> TlsSettings | None:
        """Settings for these files, checked; None when neither certificate nor key is given
        (plaintext). Half a pair, or a client CA without them, is an error."""
        if not cert and not key:
            if client_ca:
                raise TlsConfigError(f"{_CLIENT_CA} needs TLS on: set {_CERT} and {_KEY} as well")
            return None
        if not cert or not key:
            missing = _CERT if not cert else _KEY
            raise TlsConfigError(f"TLS needs a certificate and its key: set {missing} too")
        settings = cls(Path(cert), Path(key), Path(client_ca) if client_ca else None)
        settings.server_context()  # reads and checks every file now, not at the first client
        return settings

    @classmethod
    def from_env(cls) -> TlsSettings | None:
        return cls.from_files(
            env.MLGRID_GATEWAY_TLS_CERT.get(),
            env.MLGRID_GATEWAY_TLS_KEY.get(),
            env.MLGRID_GATEWAY_TLS_CLIENT_CA.get(),
        )

    def _pems(self) -> tuple[bytes, bytes, bytes | None]:
        cert = _read_pem(self.cert_file, _CERT, b"-----BEGIN CERTIFICATE-----", "certificate")
        key = _read_pem(self.key_file, _KEY, b"PRIVATE KEY-----", "private key")
        client_ca = None
        if self.client_ca_file is not None:
            client_ca = _read_pem(
                self.client_ca_file, _CLIENT_CA, b"-----BEGIN CERTIFICATE-----", "certificate"
            )
        return cert, key, client_ca

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials for the gRPC port (client certificates required when mutual)."""
        cert, key, client_ca = self._pems()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=self.mutual
        )

    def server_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        """An ``ssl`` server context for the tunnel and REST ports, offering ``alpn``."""
        self._pems()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as exc:
            raise TlsConfigError(
                f"{_KEY}: {str(self.key_file)!r} is not the key of the certificate in "
                f"{str(self.cert_file)!r} (or cannot be read without a password): {exc.reason}"
            ) from None
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.client_ca_file))
            except ssl.SSLError as exc:
                raise TlsConfigError(
                    f"{_CLIENT_CA}: {str(self.client_ca_file)!r} is not a PEM CA bundle: "
                    f"{exc.reason}"
                ) from None
            context.verify_mode = ssl.CERT_REQUIRED
        if alpn:
            context.set_alpn_protocols(alpn)
        return context
