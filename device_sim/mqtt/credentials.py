"""A device's login from a fleet passwords file: what a device needs to connect to a secure broker.

The file holds ``device-id:password`` lines; ``tinyfleet credentials add ID --passwords-file FILE``
writes it (:func:`ops.security.save_password`), ``tinyfleet simulate --credentials FILE`` reads it
here so that each simulated device logs in as its id. The broker side (CA, password hashes, ACL)
is :mod:`ops.security`; the CA certificate a device trusts is passed as ``--ca FILE``
(:class:`device_sim.mqtt.client.Credentials`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from device_sim.errors import ConfigError
from device_sim.mqtt import topics

log = logging.getLogger(__name__)


def load_passwords(path: str | Path) -> dict[str, str]:
    """``{device id: password}`` from a file of ``id:password`` lines (as
    :func:`ops.security.save_password` writes them; blank lines and ``#`` comments are skipped)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the credentials file {path}: {exc}") from exc
    passwords: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not password:
            raise ConfigError(
                f"{path}:{number} is not 'device-id:password' (write the file with "
                "`tinyfleet credentials add ID --passwords-file FILE`)"
            )
        passwords[topics.check_id(name, f"{path}:{number}: user name")] = password
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("%s holds passwords but other users may read it: chmod 600 %s", path, path)
    return passwords
