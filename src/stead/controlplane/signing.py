"""The control plane's Ed25519 key pair, which signs the enrollment keys it issues. It lives in
the control plane's data folder; the private half is created on first use, readable by its owner
only, and never leaves that folder."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from stead.config import ConfigError

PRIVATE_KEY_FILE = "license-signing-key.pem"
PUBLIC_KEY_FILE = "license-public-key.pem"


def signing_key(data_dir: Path) -> Ed25519PrivateKey:
    path = data_dir / PRIVATE_KEY_FILE
    if not path.exists():
        return _create(data_dir)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} does not hold an Ed25519 private key")
    return key


def public_key(data_dir: Path) -> Ed25519PublicKey:
    """The public half: from the data folder's public key file (what data planes are given)."""
    path = data_dir / PUBLIC_KEY_FILE
    if not path.exists():
        raise ConfigError(f"no control-plane public key at {path}")
    return load_public_key(path)


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} does not hold an Ed25519 public key")
    return key


def _create(data_dir: Path) -> Ed25519PrivateKey:
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Created readable by its owner alone, so that no other user ever sees it.
    descriptor = os.open(data_dir / PRIVATE_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private)
    (data_dir / PUBLIC_KEY_FILE).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key
