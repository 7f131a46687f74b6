"""Enrollment keys (the seed's LICENSE_KEY): Ed25519-signed tokens, JWTs signed with EdDSA, that a
control plane issues to enroll a data plane and that anyone holding its public key verifies
offline. Stead itself needs no key to run; a key only says which control plane a data plane
belongs to, for what, and until when. The token is never logged or echoed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

# PyJWT (and the cryptography it loads, 9 MiB resident) is imported by the functions that read
# or sign a key: every server imports this module for its errors, few ever handle a key.

SCOPES = ("data-plane",)
_ISSUER = "stead-control-plane"


class LicenseError(Exception):
    """A key refused; `code` is the seed's name for why, `exit_status` the process's."""

    code = "INVALID_LICENSE"
    exit_status = 3


class InvalidLicense(LicenseError):
    pass


class LicenseExpired(LicenseError):
    code = "LICENSE_EXPIRED"
    exit_status = 4


@dataclass(frozen=True)
class License:
    subject: str
    scope: str
    issued_at: datetime
    expires_at: datetime | None


def issue_license(
    key: Ed25519PrivateKey, subject: str, scope: str, expires_at: datetime | None = None
) -> str:
    if scope not in SCOPES:
        raise InvalidLicense(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")
    if not subject.strip():
        raise InvalidLicense("a key needs a subject")
    claims: dict[str, object] = {
        "iss": _ISSUER,
        "sub": subject,
        "scope": scope,
        "iat": int(datetime.now(UTC).timestamp()),
    }
    if expires_at is not None:
        claims["exp"] = int(expires_at.timestamp())
    import jwt

    return jwt.encode(claims, key, algorithm="EdDSA")


def verify_license(token: str, public_key: Ed25519PublicKey, scope: str | None = None) -> License:
    """The key's claims, or InvalidLicense / LicenseExpired saying why (never quoting the key)."""
    import jwt

    try:
        claims = jwt.decode(
            token.strip(),
            public_key,
            algorithms=["EdDSA"],
            issuer=_ISSUER,
            options={"require": ["iss", "sub", "scope", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise LicenseExpired(_expired_at(token)) from None
    except jwt.InvalidSignatureError:
        raise InvalidLicense("its signature is not this control plane's") from None
    except jwt.DecodeError:
        raise InvalidLicense("it is not a key (malformed)") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidLicense(f"its claims are wrong ({exc})") from None
    if claims["scope"] not in SCOPES or (scope is not None and claims["scope"] != scope):
        raise InvalidLicense(f"its scope {claims['scope']!r} does not allow this")
    expires = claims.get("exp")
    return License(
        subject=claims["sub"],
        scope=claims["scope"],
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
    )


def refusal(detail: str) -> LicenseError:
    """The error a control plane's refusal names: "INVALID_LICENSE: why", "LICENSE_EXPIRED: ..."."""
    code, _, reason = detail.partition(": ")
    if code == LicenseExpired.code:
        return LicenseExpired(reason)
    return InvalidLicense(reason if code == InvalidLicense.code else detail)


def require_well_formed(token: str) -> None:
    """Refuse at once what cannot be a key at all; its signature is checked where the public
    key is (the control plane)."""
    import jwt

    try:
        header = jwt.get_unverified_header(token.strip())
    except jwt.DecodeError:
        raise InvalidLicense("it is not a key (malformed)") from None
    if header.get("alg") != "EdDSA":
        raise InvalidLicense("it is not an Ed25519-signed key")


def _expired_at(token: str) -> str:
    """When an expired key expired (its signature was valid, the library checks it first)."""
    import jwt

    claims = jwt.decode(token.strip(), options={"verify_signature": False})
    return f"it expired at {datetime.fromtimestamp(claims['exp'], UTC):%Y-%m-%dT%H:%M:%SZ}"
