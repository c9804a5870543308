"""Broker security for ``tinyfleet broker --secure``: TLS, passwords and per-device topic rights.

Why: on a shared network anyone who reaches an open broker can publish fake predictions, read every
device's data, or push a model. The secure broker therefore

* refuses anonymous clients (``allow_anonymous false``);
* checks passwords from a mosquitto password file — hashes in mosquitto 2.0's ``$7$`` format
  (PBKDF2-SHA512), made here in Python so the ``mosquitto_passwd`` tool is not needed;
* limits topics with an ACL file generated from each user's role:

  ==========  ==================================================================================
  device      read/write ``tinyfleet/<its id>/#`` only (predictions, status, rollout), write its own
              Home Assistant discovery ``homeassistant/+/<its id>/#``, read ``homeassistant/status``
  subscriber  read ``tinyfleet/#`` and ``homeassistant/#``; publishes nothing
  operator    read/write ``tinyfleet/#`` and ``homeassistant/#`` (rollouts, tools), read ``$SYS/#``
  ==========  ==================================================================================

* encrypts with TLS, using a CA made for this broker (``ca.crt`` is what clients must trust) and a
  server certificate for ``localhost`` / ``127.0.0.1``.

All files live in the broker's state folder. Users are kept in ``users.json`` (name → role; no
passwords — only their hashes, in ``passwd``), from which ``passwd`` and ``acl`` are rewritten on
every change. Mosquitto re-reads both on SIGHUP; :func:`add_credentials` sends it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from device_sim.atomic import atomic_write
from device_sim.errors import ConfigError
from device_sim.mqtt import topics
from device_sim.mqtt.credentials import load_passwords

log = logging.getLogger(__name__)

ROLES = ("device", "subscriber", "operator")
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
USERS_FILE = "users.json"
BROKER_CONFIG = "mosquitto.conf"  # written by ops.broker into the same folder
SERVER_NAMES = ("localhost", "127.0.0.1")
# PBKDF2 rounds in the password hashes. The passwords are generated here with 192 bits of entropy, so
# stretching adds no real protection against guessing; it would only cost broker CPU on every
# connect (a fleet reconnecting after an outage). 1000 is 10x mosquitto_passwd's default (101).
PBKDF2_ROUNDS = 1000
SALT_BYTES = 12  # what mosquitto 2.0 uses
_HASH_CHARS = frozenset("$0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/=")
CHECK_TIMEOUT_S = 10.0  # how long mosquitto may take to load the files in check_broker_files


@dataclass(frozen=True)
class SecurityFiles:
    """Paths of the generated files, for building client connections and for docs/tests."""

    state_dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.state_dir / CA_CERT

    @property
    def ca_key(self) -> Path:
        return self.state_dir / CA_KEY

    @property
    def server_cert(self) -> Path:
        return self.state_dir / SERVER_CERT

    @property
    def server_key(self) -> Path:
        return self.state_dir / SERVER_KEY

    @property
    def password_file(self) -> Path:
        return self.state_dir / PASSWORD_FILE

    @property
    def acl_file(self) -> Path:
        return self.state_dir / ACL_FILE

    @property
    def users_file(self) -> Path:
        return self.state_dir / USERS_FILE


def check_name(name: str, what: str = "device id") -> str:
    """A name usable as an MQTT topic level, a mosquitto user and an ACL entry, or ConfigError.

    Topic wildcards (``+``, ``#``), ``/`` and ``%`` would let a user's ACL reach other devices' topics,
    ``:`` and newlines would break the password file and the ACL: this is
    :func:`device_sim.mqtt.topics.check_id`, the one check for every id and name.
    """
    return topics.check_id(name, what)


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomically write ``path`` readable by its owner only (keys, password hashes)."""
    atomic_write(path, data, mode=mode)


def hash_password(password: str, *, salt: bytes | None = None, rounds: int = PBKDF2_ROUNDS) -> str:
    """Mosquitto 2.0 ``$7$`` hash: ``$7$<rounds>$<base64 salt>$<base64 PBKDF2-SHA512>``."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return f"$7${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches a mosquitto 2.0 ``$7$`` hash (other formats: False)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        rounds, salt, digest = int(parts[2]), base64.b64decode(parts[3]), parts[4]
        computed = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    except ValueError:
        return False
    return secrets.compare_digest(base64.b64encode(computed).decode(), digest)


# --- TLS -------------------------------------------------------------------------------------


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(common_name: str = "tinyfleet broker CA", days: int = 3650):
    """A new self-signed CA (EC P-256): returns ``(certificate, private key)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_server_cert(ca_cert, ca_key, names: tuple[str, ...] = SERVER_NAMES, days: int = 825):
    """A server certificate signed by the CA, valid for ``names`` (DNS names or IP addresses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = _new_key()
    alt_names: list[x509.GeneralName] = []
    for host in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _need_cryptography() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "the secure broker needs the 'cryptography' package to make its TLS certificates: "
            "pip install cryptography"
        ) from exc


def _cert_still_valid(path: Path, min_days: int = 30) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    left = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    return left > dt.timedelta(days=min_days)


def ensure_tls(state_dir: Path) -> SecurityFiles:
    """Create the CA and server certificate once; renew the server certificate when it runs out.

    The CA is never replaced silently: clients have been told to trust it.
    """
    _need_cryptography()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    files = SecurityFiles(Path(state_dir))
    if not (files.ca_cert.is_file() and files.ca_key.is_file()):
        ca_cert, ca_key = make_ca()
        _write_private(files.ca_key, _pem_key(ca_key))
        _write_private(files.ca_cert, _pem_cert(ca_cert), mode=0o644)
        files.server_cert.unlink(missing_ok=True)
        log.info("made a new broker CA: clients must trust %s", files.ca_cert)
    if not (files.server_key.is_file() and _cert_still_valid(files.server_cert)):
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        ca_key = load_pem_private_key(files.ca_key.read_bytes(), password=None)
        cert, key = make_server_cert(ca_cert, ca_key)
        _write_private(files.server_key, _pem_key(key))
        _write_private(files.server_cert, _pem_cert(cert), mode=0o644)
    return files


# --- users, password file, ACL ---------------------------------------------------------------


def load_users(state_dir: Path) -> dict[str, dict[str, str]]:
    """``{name: {"role": ..., "hash": ...}}`` from ``users.json`` (empty when there is none)."""
    path = SecurityFiles(Path(state_dir)).users_file
    if not path.is_file():
        return {}
    try:
        users = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}): restore it from a backup") from exc
    if not isinstance(users, dict):
        raise ConfigError(f"{path} must hold a JSON object of users")
    return users


def _check_user(name: str, entry: object) -> None:
    """A users.json entry that may be written to ``passwd``/``acl`` (the file may be hand-edited)."""
    check_name(name, "user name")
    if not isinstance(entry, dict) or entry.get("role") not in ROLES:
        raise ConfigError(f"user {name!r} has no valid role (one of {', '.join(ROLES)})")
    digest = entry.get("hash")
    if not isinstance(digest, str) or not digest or not set(digest) <= _HASH_CHARS:
        raise ConfigError(f"user {name!r} has a malformed password hash: add the user again")


def acl_text(users: dict[str, dict[str, str]]) -> str:
    """The mosquitto ACL for ``users``; a user not listed here can do nothing.

    Every name is checked first: an ACL line is only ever written from a validated name.
    """
    for name in users:
        check_name(name, "user name")
    lines = [
        "# generated by tinyfleet (ops/security.py): `tinyfleet credentials add`",
        "",
    ]
    for name in sorted(users):
        role = users[name]["role"]
        lines.append(f"user {name}")
        if role == "device":
            lines += [
                f"topic readwrite {topics.device_filter(name)}",
                f"topic write homeassistant/+/{name}/#",
                "topic read homeassistant/status",
            ]
        elif role == "subscriber":
            lines += [f"topic read {topics.ALL_TOPICS}", "topic read homeassistant/#"]
        elif role == "operator":
            lines += [
                f"topic readwrite {topics.ALL_TOPICS}",
                "topic readwrite homeassistant/#",
                "topic read $SYS/#",
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


def password_text(users: dict[str, dict[str, str]]) -> str:
    """The mosquitto password file; every entry is checked first (name, role, hash characters)."""
    for name, entry in users.items():
        _check_user(name, entry)
    return "".join(f"{name}:{users[name]['hash']}\n" for name in sorted(users))


def check_broker_files(passwords: str, acl: str) -> None:
    """Make mosquitto itself load ``passwords`` and ``acl`` before they replace the live files.

    A running mosquitto that cannot read its ACL on SIGHUP carries on with **no ACL at all**, and a
    restarted one refuses to start (issue #20, row 2), so the files are loaded by a throwaway
    mosquitto on a unix socket in a private (0700) temporary folder first; ConfigError with mosquitto's words if it refuses.
    Skipped (logged) when mosquitto is not installed: then no broker runs these files either.
    """
    from ops.broker import mosquitto_binary

    binary = mosquitto_binary()
    if binary is None:
        log.info("mosquitto is not installed: broker files not test-loaded")
        return
    with tempfile.TemporaryDirectory(prefix="tinyfleet-check-") as tmp:
        folder = Path(tmp)
        (folder / PASSWORD_FILE).write_text(passwords)
        (folder / ACL_FILE).write_text(acl)
        socket_path = folder / "check.sock"
        lines = [
            f"listener 0 {socket_path}",
            "allow_anonymous false",
            f"password_file {folder / PASSWORD_FILE}",
            f"acl_file {folder / ACL_FILE}",
            "log_dest stderr",
            "log_type error",
            "persistence false",
        ]
        if os.geteuid() == 0:  # as in broker.py: root mosquitto drops to a user that cannot bind
            import getpass

            lines.append(f"user {getpass.getuser()}")
        (folder / BROKER_CONFIG).write_text("\n".join(lines) + "\n")
        process = subprocess.Popen(
            [binary, "-c", str(folder / BROKER_CONFIG)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + CHECK_TIMEOUT_S
            while process.poll() is None and not socket_path.exists():
                if time.monotonic() > deadline:
                    raise ConfigError("mosquitto took too long to load the new broker files")
                time.sleep(0.01)
            loaded = process.poll() is None
        finally:
            process.terminate()
            try:
                _, stderr = process.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # starved of CPU (a loaded machine): stop it hard
                process.kill()
                _, stderr = process.communicate()
        if not loaded:
            raise ConfigError(
                "mosquitto cannot load the new password/ACL files, so they were not installed "
                f"and no broker was reloaded: {stderr.decode(errors='replace').strip()}"
            )


def _save_users(files: SecurityFiles, users: dict[str, dict[str, str]]) -> None:
    """Validate, let mosquitto load, then install ``passwd``, ``acl`` and ``users.json``."""
    passwords, acl = password_text(users), acl_text(users)
    files.state_dir.mkdir(parents=True, exist_ok=True)
    check_broker_files(passwords, acl)
    _write_private(files.password_file, passwords.encode())
    _write_private(files.acl_file, acl.encode())
    _write_private(files.users_file, (json.dumps(users, indent=2, sort_keys=True) + "\n").encode())


def secure_broker_config(state_dir: str | Path) -> list[str]:
    """Make (or reuse) the CA, server certificate, password file and ACL in ``state_dir``.

    Returns mosquitto config lines that must follow the ``listener`` line they secure (as
    ``MosquittoBroker(extra_config=...)`` places them). With no users yet nobody can connect:
    add some with :func:`add_credentials` / ``tinyfleet credentials add``.
    """
    state_dir = Path(state_dir).resolve()
    files = ensure_tls(state_dir)
    users = load_users(state_dir)
    _save_users(files, users)
    return [
        "allow_anonymous false",
        f"password_file {files.password_file}",
        f"acl_file {files.acl_file}",
        f"cafile {files.ca_cert}",
        f"certfile {files.server_cert}",
        f"keyfile {files.server_key}",
        "require_certificate false",
    ]


def add_credentials(
    state_dir: str | Path,
    name: str,
    role: str = "device",
    *,
    password: str | None = None,
    reload: bool = True,
) -> str:
    """Add (or replace) user ``name`` with ``role`` and return its password (shown once, not stored).

    A device's user name is its device id: the ACL lets it publish under ``tinyfleet/<name>/``
    only. With ``reload``, every mosquitto running from ``state_dir`` is sent SIGHUP to pick the
    user up without dropping connected clients.
    """
    check_name(name, "user name")
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is unknown: use one of {', '.join(ROLES)}")
    state_dir = Path(state_dir).resolve()
    files = SecurityFiles(state_dir)
    password = password or secrets.token_urlsafe(24)
    users = load_users(state_dir)
    users[name] = {"role": role, "hash": hash_password(password)}
    _save_users(files, users)
    log.info("user %r (%s) written to %s", name, role, files.password_file)
    if reload:
        reload_brokers(state_dir)
    return password


def remove_credentials(state_dir: str | Path, name: str, *, reload: bool = True) -> bool:
    """Remove user ``name``; returns False when there was no such user.

    On the reload mosquitto (2.0) re-checks connected clients and disconnects this user's; its
    reconnects are refused.
    """
    check_name(name, "user name")
    state_dir = Path(state_dir).resolve()
    users = load_users(state_dir)
    if users.pop(name, None) is None:
        return False
    _save_users(SecurityFiles(state_dir), users)
    if reload:
        reload_brokers(state_dir)
    return True


def broker_pids(state_dir: str | Path) -> list[int]:
    """Process ids of mosquitto processes started with ``-c <state_dir>/mosquitto.conf`` (Linux)."""
    config = str(Path(state_dir).resolve() / BROKER_CONFIG)
    pids = []
    proc = Path("/proc")
    if not proc.is_dir():
        return pids
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [arg.decode(errors="replace") for arg in argv if arg]
        if args and Path(args[0]).name == "mosquitto" and config in args:
            pids.append(int(entry.name))
    return pids


def reload_brokers(state_dir: str | Path) -> list[int]:
    """SIGHUP every mosquitto running from ``state_dir`` so it re-reads passwords and ACL."""
    pids = broker_pids(state_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            continue
        log.info("sent SIGHUP to mosquitto pid %d to reload users", pid)
    if not pids:
        log.info("no mosquitto is running from %s; the new users apply when it starts", state_dir)
    return pids


# --- a fleet's passwords, for simulators and provisioning scripts -------------------------------


def save_password(path: str | Path, name: str, password: str) -> Path:
    """Record ``name:password`` in ``path`` (0600 from creation, rewritten atomically).

    Why a file: a simulated fleet (``tinyfleet simulate --credentials FILE``) or a provisioning
    script needs every device's password, and ``credentials add`` shows each only once. An entry
    for ``name`` that is already there is replaced. Keep the file as secret as the passwords.
    """
    check_name(name, "user name")
    path = Path(path)
    passwords = load_passwords(path) if path.exists() else {}
    passwords[name] = password
    text = "".join(f"{user}:{secret}\n" for user, secret in sorted(passwords.items()))
    _write_private(path, text.encode())
    return path
