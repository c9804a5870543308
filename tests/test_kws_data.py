"""Reading Speech Commands-style folders: labels, the speaker split, and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from device_sim.errors import DataError
from device_sim.sources.wav_io import write_wav
from training.kws.speech_commands import KEYWORDS, SILENCE, UNKNOWN, scan_folder, speaker_of

# A Speech Commands-style folder; override with $TINYFLEET_SPEECH_COMMANDS.
DEV = Path(os.environ.get("TINYFLEET_SPEECH_COMMANDS", "/work/shared/data/speech_commands_dev"))


def _clip(path: Path) -> None:
    write_wav(path, np.zeros(16000, np.float32) + 0.01, 16000)


def _fake_folder(root: Path, speakers: int = 30) -> Path:
    for word in ("yes", "no", "marvin", "zebra"):
        for s in range(speakers):
            _clip(root / word / f"{s:08x}_nohash_0.wav")
    for s in range(3):
        _clip(root / "_unknown_" / f"bird_{s + 100:08x}_nohash_1.wav")
    write_wav(root / "_background_noise_" / "hum.wav", np.zeros(32000, np.float32), 16000)
    return root


@pytest.mark.skipif(not DEV.is_dir(), reason="needs the Speech Commands dev folder")
def test_dev_folder_split_keeps_every_speaker_in_exactly_one_split():
    data = scan_folder(DEV)
    splits = {name: data.speakers(name) for name in ("training", "validation", "testing")}
    assert splits["training"] and splits["testing"]
    assert not splits["training"] & splits["testing"]
    assert not splits["training"] & splits["validation"]
    assert not splits["validation"] & splits["testing"]
    labels = {clip.label for clip in data.clips}
    assert labels == {*KEYWORDS, SILENCE, UNKNOWN}
    unknown_words = {clip.word for clip in data.clips if clip.label == UNKNOWN}
    assert {"bed", "marvin", "sheila"} <= unknown_words
    assert len(data.background) == 6 and not data.official_split


def test_speaker_is_the_hash_before_nohash_also_in_the_pooled_unknown_folder():
    assert speaker_of(Path("yes/0a7c2a8d_nohash_3.wav")) == "0a7c2a8d"
    assert speaker_of(Path("_unknown_/backward_0c540988_nohash_0.wav")) == "0c540988"


def test_unknown_folder_names_become_unknown_words_and_split_is_by_speaker(tmp_path):
    data = scan_folder(_fake_folder(tmp_path))
    by_word = {clip.word: clip.label for clip in data.clips}
    assert by_word == {
        "yes": "yes",
        "no": "no",
        "marvin": UNKNOWN,
        "zebra": UNKNOWN,
        "bird": UNKNOWN,
    }
    for speaker in {clip.speaker for clip in data.clips}:
        assert len({data.split_of[c.path] for c in data.clips if c.speaker == speaker}) == 1


def test_official_lists_are_used_when_present(tmp_path):
    root = _fake_folder(tmp_path)
    (root / "validation_list.txt").write_text("yes/00000001_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/00000002_nohash_0.wav\nyes/00000002_nohash_0.wav\n")
    data = scan_folder(root)
    assert data.official_split
    assert {c.path.name for c in data.split("testing")} == {"00000002_nohash_0.wav"}
    assert len(data.split("testing")) == 2 and len(data.split("validation")) == 1


def test_empty_or_keywordless_folders_are_data_errors_that_say_what_to_pass(tmp_path):
    with pytest.raises(DataError, match="one sub-folder per word"):
        scan_folder(tmp_path)
    _clip(tmp_path / "marvin" / "00000001_nohash_0.wav")
    with pytest.raises(DataError, match="no keyword clips"):
        scan_folder(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        scan_folder(tmp_path / "missing")
