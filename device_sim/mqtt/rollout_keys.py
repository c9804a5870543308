"""Rollout signing keys: an operator Ed25519 key pair, or the older shared HMAC secret.

Why a key pair: with a shared HMAC secret every device holds what signs rollouts, so one device
taken apart signs models for the whole fleet. With Ed25519 the operator keeps the private key
(``rollout.key``, mode 0600, never copied to devices) and devices hold only public keys
(``rollout.pub``): a leaked device key file signs nothing. A device's key file may hold several
public keys (PEM blocks, one per line group) — that is how keys are rotated without a flag day.

Which kind a file is, is read from the file itself: a PEM ``PRIVATE KEY`` (operator, Ed25519),
``PUBLIC KEY`` blocks (device, Ed25519), anything else is a shared HMAC secret (both sides).
``cryptography`` is imported only for Ed25519 files, so an HMAC device needs nothing extra.
The life cycle (generation, storage, rotation, revocation) is in ``docs/security.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_sim.atomic import atomic_write
from device_sim.errors import ConfigError

HMAC_ALG = "hmac-sha256"
ED25519_ALG = "ed25519"
MIN_SECRET_BYTES = 16
_PRIVATE_PEM = b"-----BEGIN PRIVATE KEY-----"
_PUBLIC_PEM = b"-----BEGIN PUBLIC KEY-----"
_PUBLIC_PEM_END = b"-----END PUBLIC KEY-----"


class SignatureProblem(Exception):
    """A signature that does not verify: ``code`` is the rollout refusal code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _cryptography():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # the device extra installs it; a minimal install may not have it
        raise ConfigError(
            "Ed25519 rollout keys need the 'cryptography' package: pip install 'tinyfleet[device]'"
            " (or pip install cryptography), or use a shared HMAC key file"
        ) from exc
    return serialization, ed25519


def key_id(public_key: Any) -> str:
    """A short, stable name of an Ed25519 public key: the start of the sha256 of its 32 bytes."""
    serialization, _ = _cryptography()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """The operator's key: Ed25519 private key, or an HMAC secret shared with the devices."""

    alg: str
    secret: bytes | None = None
    private: Any = None
    key_id: str | None = None

    def sign(self, text: bytes) -> str:
        if self.alg == HMAC_ALG:
            assert self.secret is not None
            return hmac.new(self.secret, text, hashlib.sha256).hexdigest()
        return base64.b64encode(self.private.sign(text)).decode()


@dataclass(frozen=True)
class VerifyKeys:
    """What a device checks signatures with: Ed25519 public keys by key id, or the HMAC secret."""

    alg: str
    secret: bytes | None = None
    public: dict[str, Any] = field(default_factory=dict)

    def verify(self, alg: Any, signer: Any, signature: str, text: bytes) -> str:
        """Return the key id (or ``hmac``) that signed ``text``, or raise SignatureProblem."""
        if alg != self.alg:
            raise SignatureProblem(
                "signature_invalid",
                f"this device verifies {self.alg} signatures, the rollout is signed {alg!r}: "
                f"sign with the {'operator key pair' if self.alg == ED25519_ALG else 'shared key'}",
            )
        if not signature.isascii():
            raise SignatureProblem("signature_invalid", "the signature is not ASCII")
        if self.alg == HMAC_ALG:
            assert self.secret is not None
            expected = hmac.new(self.secret, text, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(signature.encode(), expected.encode()):
                raise SignatureProblem(
                    "signature_invalid", "HMAC signature does not match (wrong key or tampered)"
                )
            return "hmac"
        public = self.public.get(signer) if isinstance(signer, str) else None
        if public is None:
            raise SignatureProblem(
                "signature_invalid",
                f"signed by key {signer!r}, which this device does not trust (it trusts "
                f"{', '.join(sorted(self.public))}): the key was revoked or not yet installed",
            )
        from cryptography.exceptions import InvalidSignature

        try:
            public.verify(base64.b64decode(signature, validate=True), text)
        except (InvalidSignature, ValueError) as exc:
            raise SignatureProblem(
                "signature_invalid", "Ed25519 signature does not verify (tampered or wrong key)"
            ) from exc
        return signer


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the rollout key {path}: {exc}") from exc


def _secret(data: bytes, path: Path) -> bytes:
    key = data.rstrip()
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the rollout key {path} holds {len(key)} bytes; use at least {MIN_SECRET_BYTES} random "
            "bytes (head -c 32 /dev/urandom | base64 > rollout.key), or an operator key pair "
            "(tinyfleet rollout-keygen)"
        )
    return key


def load_signing_key(path: str | Path) -> SigningKey:
    """The operator's key from ``path``: an Ed25519 private key (PEM) or an HMAC secret.

    A private key readable by other users is refused (as ssh does): chmod 600 it.
    """
    path = Path(path)
    data = _read(path)
    if _PUBLIC_PEM in data:
        raise ConfigError(
            f"{path} is a public key: devices verify with it, the operator signs with the private "
            "key made next to it by `tinyfleet rollout-keygen` (the .key file)"
        )
    if _PRIVATE_PEM not in data:
        return SigningKey(HMAC_ALG, secret=_secret(data, path))
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the private rollout key {path} is readable by others: chmod 600 {path}")
    serialization, ed25519 = _cryptography()
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a readable private key: {exc}") from exc
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key: make one with `tinyfleet rollout-keygen`")
    return SigningKey(ED25519_ALG, private=private, key_id=key_id(private.public_key()))


def load_verify_keys(path: str | Path) -> VerifyKeys:
    """A device's trusted keys from ``path``: Ed25519 public keys (PEM, one or more) or an HMAC
    secret. A private key is refused: it must never be copied to a device."""
    path = Path(path)
    data = _read(path)
    if _PRIVATE_PEM in data:
        raise ConfigError(
            f"{path} is the operator's PRIVATE key; a device needs only the public key (the .pub "
            "file): copy that instead, and keep the private key off devices"
        )
    if _PUBLIC_PEM not in data:
        return VerifyKeys(HMAC_ALG, secret=_secret(data, path))
    serialization, ed25519 = _cryptography()
    public: dict[str, Any] = {}
    for block in data.split(_PUBLIC_PEM)[1:]:
        pem = _PUBLIC_PEM + block.split(_PUBLIC_PEM_END)[0] + _PUBLIC_PEM_END + b"\n"
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise ConfigError(f"{path} holds an unreadable public key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ConfigError(f"{path} holds a public key that is not Ed25519")
        public[key_id(key)] = key
    return VerifyKeys(ED25519_ALG, public=public)


def generate_key_pair(private_path: str | Path, public_path: str | Path) -> str:
    """Make an operator Ed25519 key pair; returns its key id. Never overwrites a private key.

    The private key is written 0600 from creation (atomically); the public key 0644.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.exists():
        raise ConfigError(
            f"{private_path} exists: a new key pair would lock out every device that trusts the old "
            "one; pick another file name (rotation is described in docs/security.md)"
        )
    serialization, ed25519 = _cryptography()
    private = ed25519.Ed25519PrivateKey.generate()
    atomic_write(
        private_path,
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write(public_path, public, mode=0o644)
    return key_id(private.public_key())
