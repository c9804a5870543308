"""Every command explains itself, and user errors end with a message and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tinyfleet.cli import build_parser, main


def _commands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_top_level_help_lists_the_stages() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tinyfleet.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("build", "train", "quantize", "evaluate"):
        assert command in out


@pytest.mark.parametrize("command", _commands())
def test_each_command_has_a_useful_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"tinyfleet {command}" in text
    assert len(text.splitlines()) >= 4


def test_evaluate_of_a_missing_bundle_exits_2_with_the_reason(tmp_path, capsys) -> None:
    status = main(["evaluate", "--bundle", str(tmp_path / "nope"), "--json"])
    captured = capsys.readouterr()
    assert status == 2
    assert "does not exist" in captured.err
    assert captured.out == ""
