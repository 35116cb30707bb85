"""Secrets at rest: passwords through a slow KDF, access tokens through a fast hash.

Passwords are low-entropy and guessable, so each is stored as scrypt(password, random salt):
guessing offline costs ~16 MiB and tens of milliseconds per try. Access tokens are 32 random
bytes made here, so a plain SHA-256 of them is as hard to reverse as the token is to guess, and
lets a presented token be found by its hash with one indexed lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

#: scrypt cost: N=2**14, r=8, p=1 (16 MiB), the parameters RFC 7914 suggests for interactive use.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_TAG = "scrypt"
#: Prefix of the tokens mlgrid makes, so they are recognisable in logs and secret scanners.
TOKEN_PREFIX = "mlg_"


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) for ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return "$".join(
        [
            _SCRYPT_TAG,
            str(_SCRYPT_N),
            str(_SCRYPT_R),
            str(_SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    try:
        tag, n, r, p, salt, digest = stored.split("$")
        if tag != _SCRYPT_TAG:
            return False
        computed = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def new_token() -> str:
    """A fresh access token (shown to its owner once)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored for ``token`` and looked up when it is presented."""
    return hashlib.sha256(token.encode()).hexdigest()
