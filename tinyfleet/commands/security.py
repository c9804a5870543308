"""Fleet operations: ``credentials`` (users of a secure broker) and ``rollout`` (models to devices).

Neither needs TensorFlow: they run on a gateway next to mosquitto.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from device_sim.errors import ConfigError
from tinyfleet.output import add_json_flag, emit, render_mapping

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path(".tinyfleet-broker")  # as `tinyfleet broker --state-dir`


def run_credentials_add(args: argparse.Namespace) -> int:
    from ops import security

    state_dir = Path(args.state_dir).resolve()
    security.ensure_tls(state_dir)  # so the CA printed below exists before the broker first runs
    password = security.add_credentials(state_dir, args.name, args.role)
    if args.passwords_file is not None:
        security.save_password(args.passwords_file, args.name, password)
    result = {
        "user": args.name,
        "role": args.role,
        "password": password,
        "ca_file": str(state_dir / security.CA_CERT),
        "reloaded_brokers": security.broker_pids(state_dir),
    }

    def render(r: dict[str, Any]) -> str:
        return (
            f"user {r['user']} ({r['role']}) added; its password (shown once, not stored):\n"
            f"  {r['password']}\n"
            f"clients trust the broker's CA: {r['ca_file']}\n"
            f"running brokers reloaded: {r['reloaded_brokers'] or 'none (applies at start)'}"
        )

    emit(result, args.json, render)
    return 0


def run_credentials_remove(args: argparse.Namespace) -> int:
    from ops import security

    if not security.remove_credentials(args.state_dir, args.name):
        raise ConfigError(f"there is no user {args.name!r} in {args.state_dir}")
    emit({"removed": args.name}, args.json, render_mapping)
    return 0


def run_credentials_list(args: argparse.Namespace) -> int:
    from ops import security

    users = security.load_users(args.state_dir)
    result = {name: users[name]["role"] for name in sorted(users)}
    emit({"users": result}, args.json, render_mapping)
    return 0


def _devices(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices:
        raise ConfigError("--devices needs at least one device id (comma-separated)")
    return devices


def run_rollout(args: argparse.Namespace) -> int:
    from device_sim.mqtt.client import Credentials
    from device_sim.mqtt.rollout_keys import load_signing_key
    from ops.rollout import publish_rollout
    from tinyfleet.commands.fleet import mqtt_password

    key = load_signing_key(args.key) if args.key else None
    credentials = Credentials(
        username=args.username,
        password=mqtt_password(args),
        ca_file=args.ca,
        tls=args.ca is not None,
    )
    result = publish_rollout(
        args.broker,
        args.bundle,
        _devices(args.devices),
        key,
        credentials=credentials,
        timeout=args.timeout,
        downgrade=args.downgrade,
    )

    def render(r: dict[str, Any]) -> str:
        b = r["bundle"]
        lines = [f"rollout {r['rollout_id']}: {b['name']} {b['version']} ({b['sha256'][:12]}…)"]
        for device, report in r["devices"].items():
            state = report.get("state")
            if state == "running":
                lines.append(f"  {device}: now runs {report['running'].get('version')}")
            elif state == "accepted":
                lines.append(f"  {device}: accepted; {report.get('note')}")
            elif state == "refused":
                running = (report.get("running") or {}).get("version")
                lines.append(
                    f"  {device}: REFUSED ({report.get('code')}): {report.get('reason')}; "
                    f"still runs {running}"
                )
            else:
                lines.append(f"  {device}: no answer ({report.get('reason')})")
        return "\n".join(lines)

    emit(result.to_dict(), args.json, render)
    return 0 if result.ok else 1


def run_rollout_keygen(args: argparse.Namespace) -> int:
    from device_sim.mqtt.rollout_keys import generate_key_pair

    private = Path(f"{args.out}.key")
    public = Path(f"{args.out}.pub")
    key_id = generate_key_pair(private, public)
    result = {"private_key": str(private), "public_key": str(public), "key_id": key_id}

    def render(r: dict[str, Any]) -> str:
        return (
            f"operator key {r['key_id']}:\n"
            f"  {r['private_key']} (0600) signs rollouts: keep it on the operator's machine only\n"
            f"  {r['public_key']} goes to every device ($TINYFLEET_ROLLOUT_KEY_FILE)"
        )

    emit(result, args.json, render)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    credentials = subparsers.add_parser(
        "credentials",
        help="users of a secure broker (`tinyfleet broker --secure`)",
        description="Add, remove or list the users of a secure broker. A device's user name is its "
        "device id: it may publish under tinyfleet/<id>/ only. Subscribers only read; operators "
        "may also publish (rollouts). A running broker is reloaded (SIGHUP), clients stay connected.",
    )
    actions = credentials.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user and print its generated password")
    add.add_argument("name", metavar="DEVICE", help="device id, or a subscriber/operator name")
    add.add_argument(
        "--role",
        choices=("device", "subscriber", "operator"),
        default="device",
        help="device: writes its own topics; subscriber: reads all; operator: reads/writes all",
    )
    add.add_argument(
        "--passwords-file",
        type=Path,
        help="also record NAME:PASSWORD in this file (0600), e.g. for `simulate --credentials`",
    )
    remove = actions.add_parser("remove", help="remove a user (its rights end at once)")
    remove.add_argument("name", metavar="NAME")
    listing = actions.add_parser("list", help="list users and roles")
    for parser, func in (
        (add, run_credentials_add),
        (remove, run_credentials_remove),
        (listing, run_credentials_list),
    ):
        parser.add_argument(
            "--state-dir",
            type=Path,
            default=DEFAULT_STATE_DIR,
            help=f"the secure broker's state folder (default {DEFAULT_STATE_DIR})",
        )
        add_json_flag(parser)
        parser.set_defaults(func=func)

    rollout = subparsers.add_parser(
        "rollout",
        help="send a model bundle to devices over MQTT and report what they run",
        description="Publish a bundle to devices (chunked, QoS 1). Each device checks the sha256 "
        "(and the HMAC signature if it has a key), swaps the model between windows and reports "
        "its version; anything wrong is refused and the old model keeps running. Exit status 1 "
        "when any device refused or did not answer.",
    )
    rollout.add_argument("--bundle", type=Path, required=True, help="bundle folder to send")
    rollout.add_argument("--devices", required=True, help="device ids, comma-separated")
    rollout.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    rollout.add_argument(
        "--key",
        type=Path,
        help="signing key: the operator's Ed25519 private key (tinyfleet rollout-keygen) or an "
        "HMAC key file shared with the devices",
    )
    rollout.add_argument(
        "--downgrade",
        action="store_true",
        help="allow devices to go back to this bundle although it is an older release (signed "
        "per device, valid 1 h; needs --key)",
    )
    rollout.add_argument("--username", help="operator user of a secure broker")
    rollout.add_argument(
        "--password", help="its password (visible in `ps`: prefer --password-file)"
    )
    rollout.add_argument(
        "--password-file",
        type=Path,
        help="read the password from this file (default: $TINYFLEET_MQTT_PASSWORD)",
    )
    rollout.add_argument("--ca", type=Path, help="CA certificate of a TLS broker (ca.crt)")
    rollout.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for reports (default 30)"
    )
    add_json_flag(rollout)
    rollout.set_defaults(func=run_rollout)

    keygen = subparsers.add_parser(
        "rollout-keygen",
        help="make an operator Ed25519 key pair for signing rollouts",
        description="Writes OUT.key (private, 0600: signs rollouts, stays with the operator) and "
        "OUT.pub (public: copy to devices, named by $TINYFLEET_ROLLOUT_KEY_FILE). Never overwrites "
        "a key. Rotation and revocation: docs/security.md.",
    )
    keygen.add_argument("--out", required=True, help="path prefix, e.g. ~/.tinyfleet/rollout")
    add_json_flag(keygen)
    keygen.set_defaults(func=run_rollout_keygen)
