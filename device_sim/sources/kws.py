"""Audio sources for a keyword-spotting device: mono float32 in [-1, 1] at the bundle's rate.

* ``file``: a WAV file (any rate, mono or stereo: resampled and downmixed) or a folder of WAVs played
  back-to-back in name order with ``gap_ms`` of quiet noise between and around them. Ends with it.
* ``sim``: an endless stream of synthesized words and pauses: keywords and other words spoken by the
  installed synthesizers (cached), at random loudness, over low background noise. ``script`` lists
  what was said when (sample offset, word), so detections can be checked against the truth.
* ``stdin``: raw signed 16-bit little-endian mono PCM at the bundle's rate, e.g.
  ``arecord -f S16_LE -r 16000 -c 1 | tinyfleet device --bundle artifacts/kws --source stdin``.
* ``mic``: the same, read from ``arecord`` (ALSA) started by the source.

``realtime=True`` paces ``read`` to the sample rate (``file``/``sim`` then behave like a microphone).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import ConfigError, DataError
from device_sim.sources.pacing import Pacer
from device_sim.sources.wav_io import read_wav
from device_sim.tasks.kws.head import KwsHead

log = logging.getLogger(__name__)

KINDS = ("file", "sim", "stdin", "mic")
QUIET_DBFS = -70.0  # level of the noise between words: a quiet room, not digital zero


def quiet_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.standard_normal(n) * 10 ** (QUIET_DBFS / 20)).astype(np.float32)


NOISE_TABLE_S = 8  # seconds of room noise rendered once per process for the simulated devices
_NOISE_TABLES: dict[int, np.ndarray] = {}


def shared_quiet_noise(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """``n`` samples of the quiet-room noise from a random place in a table rendered once per
    process (read-only): drawing fresh Gaussian noise for every simulated device cost more than
    its front end. Falls back to fresh noise for spans longer than the table."""
    table = _NOISE_TABLES.get(sample_rate)
    if table is None:
        table = quiet_noise(np.random.default_rng(0), NOISE_TABLE_S * sample_rate)
        table.flags.writeable = False
        table = _NOISE_TABLES.setdefault(sample_rate, table)
    if n >= len(table):
        return quiet_noise(rng, n)
    start = int(rng.integers(len(table) - n))
    return table[start : start + n]


class ArraySource:
    """Plays a float32 array once; ``read`` returns None at the end."""

    def __init__(self, samples: np.ndarray, sample_rate: int, *, realtime: bool = False) -> None:
        self.samples = np.asarray(samples, dtype=np.float32)
        self.sample_rate = sample_rate
        self._position = 0
        self._pacer = Pacer(sample_rate, realtime)

    def read(self, n: int) -> np.ndarray | None:
        if self._position >= len(self.samples):
            return None
        chunk = self.samples[self._position : self._position + n]
        self._position += len(chunk)
        self._pacer.wait(len(chunk))
        return chunk

    def close(self) -> None:
        self._position = len(self.samples)


def wav_files(path: Path) -> list[Path]:
    """A WAV file, or the WAV files under a folder (recursively, sorted by path)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
        if not files:
            raise DataError(f"{path} holds no .wav files: pass a WAV file or a folder of them")
        return files
    raise DataError(f"{path} does not exist: pass a WAV file or a folder of WAV files")


def playlist(
    files: list[Path], sample_rate: int, *, gap_ms: float = 1000.0, seed: int = 0
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Concatenate recordings with quiet gaps before, between and after them.

    Returns the audio and (start sample, file name) of each recording.
    """
    rng = np.random.default_rng(seed)
    gap = int(sample_rate * gap_ms / 1000)
    parts = [quiet_noise(rng, gap)]
    starts: list[tuple[int, str]] = []
    position = gap
    for path in files:
        samples = read_wav(path, sample_rate)
        samples = samples + quiet_noise(rng, len(samples))
        starts.append((position, path.name))
        parts += [samples, quiet_noise(rng, gap)]
        position += len(samples) + gap
    return np.concatenate(parts), starts


class SimSource:
    """Endless synthesized speech: a word every 1.2–3 s, at -30..-10 dBFS, over quiet noise.

    Two words in three are keywords. ``script`` grows as words are generated: (start sample, word).
    """

    def __init__(
        self,
        corpus: list[tuple[str, np.ndarray]],
        sample_rate: int,
        *,
        keywords: list[str] | None = None,
        seed: int = 0,
        realtime: bool = False,
    ) -> None:
        if not corpus:
            raise DataError("the synthesized corpus is empty: cannot simulate speech")
        self.sample_rate = sample_rate
        self._rng = np.random.default_rng(seed)
        keywords = set(keywords or [])
        self._keyword_items = [i for i, (word, _) in enumerate(corpus) if word in keywords]
        self._other_items = [i for i, (word, _) in enumerate(corpus) if word not in keywords]
        self._corpus = corpus
        self._buffer = np.zeros(0, dtype=np.float32)
        self._generated = 0
        self.script: list[tuple[int, str]] = []
        self._pacer = Pacer(sample_rate, realtime)

    def _next_segment(self) -> np.ndarray:
        rng = self._rng
        pause = shared_quiet_noise(
            rng, int(self.sample_rate * rng.uniform(0.6, 2.0)), self.sample_rate
        )
        pool = self._keyword_items if rng.random() < 2 / 3 else self._other_items
        pool = pool or self._keyword_items or self._other_items
        word, audio = self._corpus[pool[int(rng.integers(len(pool)))]]
        level = 10 ** (rng.uniform(-30.0, -10.0) / 20)
        speech = audio / (np.max(np.abs(audio)) + 1e-9) * level
        speech = speech.astype(np.float32) + shared_quiet_noise(rng, len(audio), self.sample_rate)
        self.script.append((self._generated + len(pause), word))
        segment = np.concatenate([pause, speech])
        self._generated += len(segment)
        return segment

    def read(self, n: int) -> np.ndarray:
        while len(self._buffer) < n:
            self._buffer = np.concatenate([self._buffer, self._next_segment()])
        chunk, self._buffer = self._buffer[:n], self._buffer[n:]
        self._pacer.wait(n)
        return chunk

    def close(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float32)


class PcmStreamSource:
    """Raw S16_LE mono PCM from a byte stream (stdin or a pipe); None at end of stream."""

    def __init__(self, stream: BinaryIO, sample_rate: int, process: subprocess.Popen | None = None):
        self.sample_rate = sample_rate
        self._stream = stream
        self._process = process
        self._leftover = b""

    def read(self, n: int) -> np.ndarray | None:
        wanted = 2 * n - len(self._leftover)
        data = self._leftover
        while wanted > 0:
            block = self._stream.read(wanted)
            if not block:
                break
            data += block
            wanted -= len(block)
        usable = len(data) // 2 * 2
        self._leftover = data[usable:]
        if usable == 0:
            return None
        pcm = np.frombuffer(data[:usable], dtype="<i2")
        return (pcm.astype(np.float32) / 32768.0).astype(np.float32)

    def close(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()


def _mic_source(sample_rate: int) -> PcmStreamSource:
    if not shutil.which("arecord"):
        raise ConfigError(
            "--source mic needs ALSA's arecord (`sudo apt-get install alsa-utils`); or pipe audio "
            "in: `arecord -f S16_LE -r 16000 -c 1 | tinyfleet device --bundle artifacts/kws --source stdin`"
        )
    command = ["arecord", "-q", "-t", "raw", "-f", "S16_LE", "-r", str(sample_rate), "-c", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    return PcmStreamSource(process.stdout, sample_rate, process)


_SHARED_CORPUS: list[list[tuple[str, np.ndarray]]] = []  # this process's corpus, once loaded


def sim_corpus(keywords: list[str], seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Words for the simulator: the newest cached synthesized corpus, else a small fresh one.

    Loaded once per process and shared, read-only, by every simulated device of it (each reads
    it with its own seeded generator): a corpus is tens of MB, and a copy per device made 50 KWS
    devices take 2.6 GB.
    """
    if not _SHARED_CORPUS:
        from device_sim.sources import kws_speech_synth

        corpus = kws_speech_synth.cached_words() or kws_speech_synth.demo_words(
            (*keywords, "bird", "house", "seven", "wow"), seed=seed
        )
        for _, audio in corpus:
            audio.flags.writeable = False
        _SHARED_CORPUS.append(corpus)
    return _SHARED_CORPUS[0]


def open_source(
    bundle: Bundle,
    kind: str,
    *,
    path: Path | None = None,
    seed: int = 0,
    realtime: bool = False,
) -> ArraySource | SimSource | PcmStreamSource:
    """Open a KWS audio source at the rate of the bundle's front end (see the module docstring)."""
    sample_rate = int(bundle.feature_config.get("sample_rate", 16000))
    if kind == "file":
        if path is None:
            raise ConfigError("--source file needs --path: a WAV file or a folder of WAV files")
        files = wav_files(Path(path))
        samples, starts = playlist(files, sample_rate, seed=seed)
        log.info("playing %d recording(s), %.1f s of audio", len(files), len(samples) / sample_rate)
        source = ArraySource(samples, sample_rate, realtime=realtime)
        source.script = starts  # type: ignore[attr-defined]
        return source
    if kind == "sim":
        keywords = list(KwsHead.from_dict(bundle.head).keywords or [])
        corpus = sim_corpus(keywords, seed)
        return SimSource(corpus, sample_rate, keywords=keywords, seed=seed, realtime=realtime)
    if kind == "stdin":
        return PcmStreamSource(sys.stdin.buffer, sample_rate)
    if kind == "mic":
        return _mic_source(sample_rate)
    raise ConfigError(f"unknown kws source {kind!r}; choose one of {', '.join(KINDS)}")
