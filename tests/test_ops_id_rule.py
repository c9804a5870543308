"""One id rule: a device id one part refuses is refused by every part that names devices.

Topic levels, the device's publisher and rollout receiver, the rollout sender, Home Assistant
discovery, the broker's users (passwd, ACL) and the fleet passwords file all call
``topics.check_id``; a name that passed one and failed another (``:`` once did) would make a
device that can publish but never log in, or an ACL line the broker cannot load.
"""

from __future__ import annotations

import pytest

from device_sim.errors import ConfigError
from device_sim.mqtt import topics
from device_sim.mqtt.client import parse_broker_url
from device_sim.mqtt.credentials import load_passwords
from device_sim.mqtt.ha_discovery import discovery_messages
from device_sim.mqtt.payload import IdentityError, encode_prediction, parse_prediction
from device_sim.mqtt.publisher import Publisher
from device_sim.mqtt.rollout import RolloutReceiver
from ops import rollout as sender
from ops import security

BAD = [
    "dev:1",
    "dev/1",
    "dev+1",
    "dev#",
    "dev%1",
    "dev 1",
    "dev-x\n",
    "",
    "-dev",
    "$SYS",
    "dév",
    "d" * 65,
]
GOOD = ["dev-1", "a.b_c", "D" * 64, "0"]
HASH = security.hash_password("pw")


def _prediction(device: str) -> bytes:
    return encode_prediction(
        device=device,
        task="kws",
        model={"name": "m", "version": "1", "sha256": "0" * 64},
        seq=0,
        window_start_ms=0,
        window_end_ms=1000,
        fields={"label": "yes"},
    )


def _every_check(name: str, tmp_path) -> dict[str, object]:
    """Run ``name`` through every place that takes a device id; what each one did."""
    address = parse_broker_url("mqtt://127.0.0.1:9")
    checks = {
        "topics.check_id": lambda: topics.check_id(name),
        "topics.shared": lambda: topics.shared(name, topics.ALL_PREDICTIONS),
        "publisher": lambda: Publisher(name, address, spool=None).device_id,
        "rollout receiver": lambda: RolloutReceiver(name, tmp_path, None, print, {}),
        "rollout sender": lambda: sender.publish_rollout(address.url, tmp_path, [name]),
        "ha discovery": lambda: discovery_messages(name, []),
        "credentials add": lambda: security.add_credentials(tmp_path / "s", name, reload=False),
        "acl": lambda: security.acl_text({name: {"role": "device", "hash": HASH}}),
        "passwd": lambda: security.password_text({name: {"role": "device", "hash": HASH}}),
        "passwords file": lambda: security.save_password(tmp_path / "pw", name, "secret"),
        "prediction body": lambda: parse_prediction(
            _prediction(name), topics.prediction_topic(name, "kws")
        ),
    }
    outcomes: dict[str, object] = {}
    for what, check in checks.items():
        try:
            check()
        except IdentityError:
            outcomes[what] = "refused"
        except ConfigError as exc:
            refused = "not allowed" in str(exc)  # the id rule's words, not another complaint
            outcomes[what] = "refused" if refused else f"accepted (then: {exc})"
        except Exception as exc:  # got past the id check (e.g. no bundle folder, no broker)
            outcomes[what] = f"accepted ({type(exc).__name__})"
        else:
            outcomes[what] = "accepted"
    return outcomes


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_an_id_refused_anywhere_is_refused_everywhere(bad, tmp_path, monkeypatch):
    monkeypatch.setattr(security, "check_broker_files", lambda passwords, acl: None)
    outcomes = _every_check(bad, tmp_path)
    accepted = {what: how for what, how in outcomes.items() if str(how).startswith("accepted")}
    assert not accepted, f"{bad!r} passed {sorted(accepted)}"
    assert topics.is_valid_id(bad) is False
    assert not (tmp_path / "s" / security.ACL_FILE).exists()
    if "\n" not in bad and ":" not in bad and bad:  # a name the file format can even hold
        (tmp_path / "fleet.txt").write_text(f"{bad}:secret\n")
        with pytest.raises(ConfigError, match="not allowed"):
            load_passwords(tmp_path / "fleet.txt")


@pytest.mark.parametrize("good", GOOD)
def test_an_id_accepted_by_topics_is_accepted_by_credentials_and_acl(good, tmp_path, monkeypatch):
    monkeypatch.setattr(security, "check_broker_files", lambda passwords, acl: None)
    assert topics.check_id(good) == good
    password = security.add_credentials(tmp_path / "s", good, reload=False)
    assert f"user {good}\n" in (tmp_path / "s" / security.ACL_FILE).read_text()
    security.save_password(tmp_path / "fleet.txt", good, password)
    assert load_passwords(tmp_path / "fleet.txt") == {good: password}
    parsed = topics.parse_topic(topics.prediction_topic(good, "kws"))
    assert parsed is not None and parsed.device == good
