"""The client's side of TLS and credentials towards a gateway (``grpcs://``).

Settings (MLflow's names work too, as for every variable):

- ``MLGRID_TRACKING_SERVER_CERT_PATH``: the CA bundle (PEM) the gateway's certificate must chain
  to; unset, the system's trusted CAs.
- ``MLGRID_TRACKING_CLIENT_CERT_PATH``: a client certificate (PEM) for gateways that require one
  (mutual TLS), with its key in ``MLGRID_TRACKING_CLIENT_KEY_PATH`` or in the same file (as
  MLflow accepts it).
- ``MLGRID_TRACKING_TOKEN`` (a bearer token), else ``MLGRID_TRACKING_USERNAME`` and
  ``…_PASSWORD`` (HTTP Basic): the ``authorization`` every call carries.

Files are read when a transport is built; a file that cannot be read or holds no certificate or
key is an error naming the variable. A failed TLS handshake comes back with a message that says
what to check (:func:`explain_tls_failure`) instead of gRPC's "failed to connect".
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import grpc

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----\r?\n?", re.DOTALL)


def _read(variable: env.EnvironmentVariable[str | None]) -> bytes | None:
    path = variable.get()
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InvalidParameterValue(
            f"{variable.source()}={path!r}: cannot read the file: {exc.strerror}"
        ) from None


def _blocks(data: bytes, kind: str) -> bytes:
    """The PEM blocks of ``data`` whose type ends with ``kind`` (CERTIFICATE, PRIVATE KEY)."""
    return b"".join(
        m.group(0) for m in _PEM_BLOCK.finditer(data) if m.group(1).endswith(kind.encode())
    )


@dataclass(frozen=True)
class ClientTls:
    """What the SDK presents to and expects from a TLS gateway."""

    #: The CA bundle to verify the gateway with; None: the system's CAs.
    root_certificates: bytes | None = None
    #: The client certificate chain and its key, for mutual TLS; None: no certificate.
    certificate_chain: bytes | None = None
    private_key: bytes | None = None

    @classmethod
    def from_env(cls) -> ClientTls:
        """The settings above, read and checked now."""
        roots = _read(env.MLGRID_TRACKING_SERVER_CERT_PATH)
        if roots is not None and not _blocks(roots, "CERTIFICATE"):
            raise InvalidParameterValue(
                f"{env.MLGRID_TRACKING_SERVER_CERT_PATH.source()}: the file holds no PEM "
                "certificate (expected the CA bundle that signed the gateway's certificate)"
            )
        cert_file = _read(env.MLGRID_TRACKING_CLIENT_CERT_PATH)
        if cert_file is None:
            return cls(roots)
        chain = _blocks(cert_file, "CERTIFICATE")
        if not chain:
            raise InvalidParameterValue(
                f"{env.MLGRID_TRACKING_CLIENT_CERT_PATH.source()}: the file holds no PEM "
                "certificate"
            )
        key_file = _read(env.MLGRID_TRACKING_CLIENT_KEY_PATH)
        key = _blocks(key_file if key_file is not None else cert_file, "PRIVATE KEY")
        if not key:
            where = (
                env.MLGRID_TRACKING_CLIENT_KEY_PATH.source()
                if key_file is not None
                else f"{env.MLGRID_TRACKING_CLIENT_CERT_PATH.source()} (no key file is set)"
            )
            raise InvalidParameterValue(
                f"{where}: no PEM private key found for the client certificate; set "
                "MLGRID_TRACKING_CLIENT_KEY_PATH to the key's file, or put the key in the "
                "certificate's file"
            )
        return cls(roots, chain, key)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def authorization_header() -> str | None:
    """The ``authorization`` value the settings above give (read per call, so credentials
    rotated in the environment apply at once); None without credentials."""
    token = env.MLGRID_TRACKING_TOKEN.get()
    if token:
        return f"Bearer {token.strip()}"
    user, password = env.MLGRID_TRACKING_USERNAME.get(), env.MLGRID_TRACKING_PASSWORD.get()
    if user and password:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return f"Basic {basic}"
    return None


def explain_tls_failure(details: str, target: str, tls: ClientTls) -> str | None:
    """A message saying what to check when ``details`` (a failed call's) is a TLS failure on
    the way to the gateway at ``target``; None when it is not one."""
    ca = env.MLGRID_TRACKING_SERVER_CERT_PATH
    trusted = f"the CA bundle {ca.source()}={ca.get()!r}" if ca.get() else "the system's CAs"
    if "CERTIFICATE_VERIFY_FAILED" in details:
        reason = details.rsplit("CERTIFICATE_VERIFY_FAILED:", 1)[-1].strip(" :")
        reason = reason.removesuffix(": OK").strip()
        insecure = (
            " (MLGRID_TRACKING_INSECURE_TLS cannot turn verification off: gRPC has no such switch)"
            if env.MLGRID_TRACKING_INSECURE_TLS.get()
            else ""
        )
        return (
            f"TLS: the certificate of the gateway at {target} is not trusted ({reason}): it is "
            f"not signed by {trusted}; set MLGRID_TRACKING_SERVER_CERT_PATH to the CA bundle "
            f"that signed it{insecure}"
        )
    if "Peer name" in details and "not in peer certificate" in details:
        return (
            f"TLS: the certificate of the gateway at {target} is not issued for that host name; "
            "connect with a name its certificate lists"
        )
    if "handshake failed" in details.lower() or (
        "Socket closed" in details and tls.certificate_chain is None
    ):
        hint = (
            "it may require a client certificate (mutual TLS): set "
            "MLGRID_TRACKING_CLIENT_CERT_PATH (and MLGRID_TRACKING_CLIENT_KEY_PATH)"
            if tls.certificate_chain is None
            else "it may not accept this client certificate, or not speak TLS on that port"
        )
        return f"TLS: the gateway at {target} ended the connection during TLS setup; {hint}"
    if "Socket closed" in details:
        return (
            f"TLS: the gateway at {target} ended the connection during TLS setup; it may not "
            "accept the client certificate in MLGRID_TRACKING_CLIENT_CERT_PATH (not signed by "
            "the CA it trusts for clients), or not speak TLS on that port"
        )
    return None
