"""Keys, certificates and an identity provider's JWKS endpoint, made by the tests themselves.

* :func:`make_ca` / :meth:`CertificateAuthority.issue`: a CA and the certificates it signs
  (server certificates for 127.0.0.1/localhost, client certificates for a user), written as PEM.
* :class:`IdentityProvider`: RSA and EC signing keys, JWTs signed with them, and the JWKS served
  by a real HTTP server on loopback (:func:`serve_jwks`), counting the fetches.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# ---------------------------------------------------------------- certificates


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Issued:
    """A certificate and its key, as PEM files."""

    cert_path: Path
    key_path: Path


@dataclass
class CertificateAuthority:
    key: Any
    cert: x509.Certificate
    cert_path: Path
    directory: Path

    def issue(self, name: str, *, server: bool = True) -> Issued:
        """A certificate signed by this CA: for 127.0.0.1 and localhost (``server``), or a
        client certificate whose common name is ``name``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = self.directory / f"{name}.crt"
        key_path = self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        return Issued(cert_path, key_path)


def make_ca(directory: Path, name: str = "test-ca") -> CertificateAuthority:
    """A self-signed CA whose certificate is written to ``directory/<name>.crt``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertificateAuthority(key, cert, cert_path, directory)


# ---------------------------------------------------------------- an identity provider


ISSUER = "https://idp.example.test/realms/ml"
AUDIENCE = "mlgrid"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "use": "sig", "alg": self.alg}


@dataclass
class IdentityProvider:
    """Signing keys and the tokens they sign; ``jwks()`` is what the provider publishes."""

    keys: dict[str, SigningKey] = field(default_factory=dict)
    issuer: str = ISSUER

    def add_key(self, alg: str = "RS256", kid: str | None = None) -> SigningKey:
        kid = kid or uuid.uuid4().hex[:12]
        private = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        key = SigningKey(kid, alg, private)
        self.keys[kid] = key
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.keys.values()]}

    def token(
        self,
        key: SigningKey,
        *,
        subject: str = "alice-id",
        lifetime: float = 300,
        now: float | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A JWT signed with ``key``: issuer, audience, sub, iat/exp around ``now``; ``claims``
        add to or replace them (None removes one)."""
        issued = time.time() if now is None else now
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": int(issued),
            "exp": int(issued + lifetime),
            "email": "alice@example.test",
            "preferred_username": "alice",
            "groups": ["ml-team"],
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(
            body, key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})}
        )


@dataclass
class JwksServer:
    url: str
    provider: IdentityProvider
    requests: list[str] = field(default_factory=list)


@contextmanager
def serve_jwks(provider: IdentityProvider) -> Iterator[JwksServer]:
    """The provider's JWKS on ``http://127.0.0.1:<port>/jwks``, answered afresh per request (keys
    added later are served), each request counted."""
    served: list[JwksServer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served[0].requests.append(self.path)
            body = json.dumps(provider.jwks()).encode()
            self.send_response(200 if self.path == "/jwks" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.append(JwksServer(f"http://127.0.0.1:{server.server_address[1]}/jwks", provider))
    try:
        yield served[0]
    finally:
        server.shutdown()
        server.server_close()
