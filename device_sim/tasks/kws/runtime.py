"""Keyword spotting on a continuous audio stream: smoothed posteriors and debounced detections.

The device runs the model on the last 1 s of audio every ``hop_ms`` (250 ms by default), so one
spoken word is seen by 3–4 overlapping windows. Reporting each window's top label would turn one
"yes" into four. Like TFLM micro_speech's ``RecognizeCommands``, :class:`KeywordDetector` averages
the posteriors of the windows of the last ``average_window_ms``, and declares a keyword when

* the averaged top label is a keyword (not ``_silence_``/``_unknown_``) with score ≥ ``threshold``,
* at least ``minimum_count`` windows are in the average (no decision on the very first window),
* ``suppression_ms`` have passed since the last detection, and the detector has re-armed: after
  detecting a keyword, the averaged top must leave that keyword (or drop below the threshold) before
  the same keyword can fire again — a long "yeeees" is one event, "yes … yes" is two.

Parameters come from the bundle (``extra.detection``), written at training time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import BundleError
from device_sim.tasks import TaskResult
from device_sim.tasks.kws.head import NON_KEYWORDS, KwsHead

# A window is not inferred when more than this share of its samples sit at full scale: the
# microphone or ADC saturated, and the log-mel of a clipped waveform is confident nonsense. A few
# clipped peaks in loud speech are normal and stay below it.
MAX_CLIPPED_SHARE = 0.01
FULL_SCALE = 0.999  # |sample| at or above this, on the [-1, 1] scale, counts as clipped

SCORE_DECIMALS = 4  # posteriors in the payload (the drift reference rounds the same way)

DEFAULT_DETECTION = {
    "hop_ms": 250,
    "average_window_ms": 750,
    "threshold": 0.6,
    "suppression_ms": 1000,
    "minimum_count": 2,
}


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    time_ms: float


class KeywordDetector:
    """Posterior smoothing and debouncing over time (see the module docstring). Times in ms."""

    def __init__(
        self,
        labels: list[str],
        keywords: list[str] | None = None,
        *,
        average_window_ms: float = 750,
        threshold: float = 0.6,
        suppression_ms: float = 1000,
        minimum_count: int = 2,
    ) -> None:
        if not labels:
            raise BundleError("the bundle lists no labels: rebuild it with `tinyfleet build kws`")
        self.labels = list(labels)
        keywords = keywords or [label for label in labels if label not in NON_KEYWORDS]
        self._is_keyword = np.array([label in keywords for label in self.labels])
        self.average_window_ms = float(average_window_ms)
        self.threshold = float(threshold)
        self.suppression_ms = float(suppression_ms)
        self.minimum_count = int(minimum_count)
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._last_detection: Detection | None = None
        self._armed = True

    def update(self, scores: np.ndarray, time_ms: float) -> tuple[int, float, Detection | None]:
        """Add one window's posteriors at ``time_ms``; return (top index, its smoothed score,
        a :class:`Detection` or None)."""
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape != (len(self.labels),):
            raise BundleError(
                f"the model gives {scores.shape} scores but the bundle lists {len(self.labels)} "
                "labels; rebuild the bundle"
            )
        if self._history and time_ms < self._history[-1][0]:
            self._history.clear()  # time went backwards: a new stream
        self._history.append((time_ms, scores))
        while self._history and self._history[0][0] <= time_ms - self.average_window_ms:
            self._history.popleft()
        average = np.mean([s for _, s in self._history], axis=0)
        top = int(np.argmax(average))
        top_score = float(average[top])
        last = self._last_detection
        if last is not None and (self.labels[top] != last.label or top_score < self.threshold):
            self._armed = True
        detection = None
        confident = (
            self._is_keyword[top]
            and top_score >= self.threshold
            and len(self._history) >= self.minimum_count
        )
        quiet_long_enough = last is None or time_ms - last.time_ms >= self.suppression_ms
        if confident and quiet_long_enough and (self._armed or self.labels[top] != last.label):
            detection = Detection(self.labels[top], top_score, time_ms)
            self._last_detection = detection
            self._armed = False
        return top, top_score, detection


class TaskRuntime:
    """Turns each window's posteriors into payload fields and, on a detection, an event."""

    def __init__(self, bundle: Bundle) -> None:
        try:
            head = KwsHead.from_dict(bundle.head)
        except BundleError as exc:
            raise BundleError(f"{bundle.manifest_path}: {exc}") from exc
        settings = {**DEFAULT_DETECTION, **dict(bundle.extra.get("detection") or {})}
        sample_rate = int(bundle.feature_config.get("sample_rate", 16000))
        self.hop_ms = float(settings["hop_ms"])
        if not 250 <= self.hop_ms <= 500:
            raise BundleError(f"detection hop_ms must be 250-500 ms, the bundle says {self.hop_ms}")
        self.hop_samples = round(sample_rate * self.hop_ms / 1000)
        self.window_ms = float(bundle.feature_config.get("clip_ms", 1000))
        self.detector = KeywordDetector(
            list(head.labels),
            list(head.keywords or []) or None,
            average_window_ms=settings["average_window_ms"],
            threshold=settings["threshold"],
            suppression_ms=settings["suppression_ms"],
            minimum_count=settings["minimum_count"],
        )
        self._windows = 0

    @property
    def time_ms(self) -> float:
        """Stream time (ms) at the end of the latest window: the device fills one whole window,
        then advances one hop per window."""
        return self.window_ms + (self._windows - 1) * self.hop_ms

    def check_window(self, window: np.ndarray) -> str | None:
        """Reason a raw audio window (samples in [-1, 1]) must not be inferred, or None."""
        window = np.asarray(window)
        if window.size == 0:
            return "empty window"
        finite = np.isfinite(window)
        if not finite.all():
            return f"{int(window.size - finite.sum())} non-finite sample(s) (NaN/Inf)"
        clipped = int(np.count_nonzero(np.abs(window) >= FULL_SCALE))
        if clipped > MAX_CLIPPED_SHARE * window.size:
            return f"{clipped} of {window.size} samples clipped at full scale (input too loud)"
        return None

    def invalid_result(self, reason: str) -> TaskResult:
        """What to publish for a window that was not inferred; stream time still advances."""
        self._windows += 1
        return TaskResult(fields={"valid": False, "reason": reason, "label": None})

    def process(self, output: np.ndarray, features: np.ndarray) -> TaskResult:
        self._windows += 1
        top, score, detection = self.detector.update(output, self.time_ms)
        labels = self.detector.labels
        fields: dict[str, Any] = {
            "label": labels[top],
            "score": round(score, SCORE_DECIMALS),
            "scores": {
                label: round(float(s), SCORE_DECIMALS)
                for label, s in zip(labels, output, strict=True)
            },
        }
        event = None
        if detection is not None:
            event = {
                "type": "keyword",
                "label": detection.label,
                "score": round(detection.score, 4),
                "time_ms": detection.time_ms,
            }
        return TaskResult(fields=fields, event=event)
