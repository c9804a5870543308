"""Read a folder in the Speech Commands layout and split it by speaker.

Layout (Warden 2018; a full v0.02 download and our dev subset both follow it)::

    DIR/<word>/<speaker>_nohash_<n>.wav      one folder per word, 1 s, 16 kHz mono
    DIR/_unknown_/<word>_<speaker>_nohash_<n>.wav   (optional) other words, pre-pooled
    DIR/_silence_/*.wav                      (optional) 1 s background clips
    DIR/_background_noise_/*.wav             long noise recordings (augmentation, silence)
    DIR/validation_list.txt, testing_list.txt (optional) the official split

The 12 labels are the ten keywords, ``_silence_`` and ``_unknown_``. Any other word folder (``bed``,
``marvin`` …, or names we have never heard of) is an ``_unknown_`` word. Without the official lists
the split is by speaker — the hash before ``_nohash_`` — so no speaker's voice is both trained on and
tested on: a by-clip split overstates accuracy on new speakers by several points.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_sim.errors import DataError
from device_sim.sources.wav_io import read_wav

log = logging.getLogger(__name__)

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
LABELS = (*KEYWORDS, SILENCE, UNKNOWN)
BACKGROUND_DIR = "_background_noise_"
SPLITS = ("training", "validation", "testing")
SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000


@dataclass(frozen=True)
class Clip:
    """One recording: ``label`` is one of :data:`LABELS`, ``word`` what was said."""

    path: Path
    label: str
    word: str
    speaker: str


@dataclass
class SpeechCommandsFolder:
    """The clips of a dataset folder, their split, and its background-noise recordings."""

    root: Path
    clips: list[Clip]
    background: list[Path]
    official_split: bool
    split_of: dict[Path, str]

    def split(self, name: str) -> list[Clip]:
        return [clip for clip in self.clips if self.split_of[clip.path] == name]

    def speakers(self, name: str) -> set[str]:
        return {clip.speaker for clip in self.split(name) if clip.label != SILENCE}


def speaker_of(path: Path) -> str:
    """The speaker id: the token before ``_nohash_`` (``<word>_`` prefixes are dropped).

    Files without ``_nohash_`` (``_silence_`` clips, user recordings) count as their own speaker.
    """
    stem = path.stem
    if "_nohash_" in stem:
        return stem.split("_nohash_")[0].split("_")[-1]
    return f"{path.parent.name}/{stem}"


def _word_of(path: Path, folder: str) -> str:
    if folder == UNKNOWN and "_nohash_" in path.stem:
        prefix = path.stem.split("_nohash_")[0]
        return prefix.rsplit("_", 1)[0] if "_" in prefix else UNKNOWN
    return folder


def label_of(folder: str) -> str:
    """Keyword folders keep their name; ``_silence_`` is silence; every other folder is unknown."""
    if folder in KEYWORDS or folder == SILENCE:
        return folder
    return UNKNOWN


def hash_percent(key: str) -> float:
    """A stable number in [0, 100) from a string (sha1), independent of Python's hash seed."""
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 10000 / 100.0


def split_for(key: str, validation_percent: float, testing_percent: float) -> str:
    percent = hash_percent(key)
    if percent < testing_percent:
        return "testing"
    if percent < testing_percent + validation_percent:
        return "validation"
    return "training"


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def scan_folder(
    root: str | Path, *, validation_percent: float = 10.0, testing_percent: float = 20.0
) -> SpeechCommandsFolder:
    """List a Speech Commands-style folder and assign every clip to a split.

    With ``validation_list.txt``/``testing_list.txt`` the official split is used (everything else
    is training). Otherwise speakers are hashed into splits (``testing_percent`` % of speakers for
    testing, ``validation_percent`` % for validation); ``_silence_`` clips are hashed by file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data {root} is not a folder: pass a Speech Commands-style folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name != BACKGROUND_DIR)
    clips: list[Clip] = []
    for folder in folders:
        label = label_of(folder.name)
        for path in sorted(folder.glob("*.wav")):
            clips.append(Clip(path, label, _word_of(path, folder.name), speaker_of(path)))
    if not clips or not any(clip.label in KEYWORDS for clip in clips):
        raise DataError(
            f"{root} holds no keyword clips: expected one sub-folder per word (yes/, no/, up/ … "
            "with 1 s 16 kHz WAV files), as in a Speech Commands download. Without --data, "
            "`tinyfleet build kws` uses the synthesized corpus instead."
        )
    background_dir = root / BACKGROUND_DIR
    background = sorted(background_dir.glob("*.wav")) if background_dir.is_dir() else []

    validation_list, testing_list = root / "validation_list.txt", root / "testing_list.txt"
    official = validation_list.is_file() and testing_list.is_file()
    split_of: dict[Path, str] = {}
    if official:
        listed = {"validation": _read_list(validation_list), "testing": _read_list(testing_list)}
    for clip in clips:
        relative = f"{clip.path.parent.name}/{clip.path.name}"
        if official and clip.label != SILENCE:
            split_of[clip.path] = next(
                (name for name, files in listed.items() if relative in files), "training"
            )
        else:
            split_of[clip.path] = split_for(clip.speaker, validation_percent, testing_percent)
    data = SpeechCommandsFolder(root, clips, background, official, split_of)
    counts = Counter(split_of.values())
    log.info(
        "%s: %d clips (%s), %d background recordings, %s split",
        root,
        len(clips),
        ", ".join(f"{name} {counts[name]}" for name in SPLITS),
        len(background),
        "official" if official else "by-speaker",
    )
    return data


def load_clips(
    clips: list[Clip], labels: tuple[str, ...] = LABELS
) -> tuple[np.ndarray, np.ndarray]:
    """Read clips as int16 audio ``(n, 16000)`` (padded/cut to 1 s, centred) and label indices.

    int16 halves the memory of a full Speech Commands load (~1.3 GB for 40k clips).
    """
    audio = np.zeros((len(clips), CLIP_SAMPLES), dtype=np.int16)
    for i, clip in enumerate(clips):
        audio[i] = to_int16(fit_length(read_wav(clip.path, SAMPLE_RATE), CLIP_SAMPLES))
    index = {label: i for i, label in enumerate(labels)}
    return audio, np.array([index[clip.label] for clip in clips], dtype=np.int64)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop or zero-pad to ``length`` samples."""
    if len(samples) >= length:
        start = (len(samples) - length) // 2
        return samples[start : start + length]
    pad = length - len(samples)
    return np.pad(samples, (pad // 2, pad - pad // 2))


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)


def load_background(paths: list[Path]) -> list[np.ndarray]:
    """Background-noise recordings as float32 16 kHz mono arrays (each at least 1 s)."""
    noises = []
    for path in paths:
        samples = read_wav(path, SAMPLE_RATE)
        if len(samples) >= CLIP_SAMPLES:
            noises.append(samples)
        else:
            log.warning("skipping %s: shorter than 1 s", path)
    return noises


def cap_per_label(clips: list[Clip], label: str, limit: int, seed: int) -> list[Clip]:
    """Keep at most ``limit`` clips of ``label`` (random, seeded), all clips of other labels.

    A full download holds ~10× more unknown-word clips than any keyword; training on all of them
    teaches the model to answer "unknown".
    """
    chosen = [clip for clip in clips if clip.label == label]
    if len(chosen) <= limit:
        return clips
    rng = np.random.default_rng(seed)
    keep = {chosen[i].path for i in rng.choice(len(chosen), size=limit, replace=False)}
    return [clip for clip in clips if clip.label != label or clip.path in keep]
