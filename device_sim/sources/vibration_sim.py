"""A physics-based simulator of a 3-axis MEMS accelerometer on a motor's bearing housing.

What it models (accelerations in g, axes ``x``/``y`` radial — ``y`` the load direction — ``z``
axial):

* **shaft rotation** at a speed that follows a seeded schedule of dwells and ramps (normal
  operation: 15–50 Hz, i.e. 900–3000 rpm) and a load in [0, 1]; the 1× component is in quadrature
  on x/y, harmonics fall as 1/k, forcing grows with speed² as centrifugal forces do;
* **broadband excitation** of the housing's structural resonance (``resonance_hz``, damping
  ``resonance_damping``) by friction/flow noise whose level grows with speed and load, a lower
  structural mode, and the **sensor's white noise** (``sensor_noise_g`` RMS, a typical MEMS part);
* **faults** with a severity in (0, 1] (0.2 = incipient … 1 = severe):

  - ``imbalance``: the 1× component grows (radial);
  - ``misalignment``: 2× (and some 1×) grow, strongest on the axial axis;
  - ``looseness``: many harmonics, half-order sub-harmonics (0.5×, 1.5×, 2.5×) and a rattle once
    per revolution that rings a low structural mode;
  - rolling-bearing defects of a **6205-2RS** deep-groove bearing (the CWRU test bearing: 9 balls of
    7.94 mm on a 39.04 mm pitch circle, 0° contact angle): impacts at BPFO = 3.585×,
    BPFI = 5.415×, 2·BSF = 4.714× shaft speed, with 1 % random timing jitter (rolling elements
    slip), each impact ringing the housing resonance. Inner-race impacts are amplitude-modulated
    at shaft speed (the defect passes through the load zone once per turn), ball impacts at the
    cage frequency FTF = 0.398×, outer-race impacts are not modulated (the defect sits still).

Everything is driven by one ``numpy.random.Generator``, so a seed reproduces a recording exactly,
and rendering is chunked with all phases and filter states carried over, so ``render(1000)`` twice
equals ``render(2000)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

FAULT_KINDS = ("imbalance", "misalignment", "looseness", "outer_race", "inner_race", "ball")
SEVERITIES = {"incipient": 0.2, "moderate": 0.5, "severe": 1.0}
REFERENCE_SPEED_HZ = 25.0  # 1500 rpm: the speed at which the amplitudes below are quoted


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling-bearing geometry; the default is the 6205-2RS JEM SKF of the CWRU data set."""

    name: str = "6205-2RS"
    n_balls: int = 9
    ball_diameter_mm: float = 7.94
    pitch_diameter_mm: float = 39.04
    contact_angle_deg: float = 0.0

    def fault_orders(self) -> dict[str, float]:
        """Defect frequencies as multiples of shaft speed (orders): BPFO, BPFI, BSF, FTF."""
        ratio = self.ball_diameter_mm / self.pitch_diameter_mm
        cos = math.cos(math.radians(self.contact_angle_deg))
        return {
            "bpfo": self.n_balls / 2 * (1 - ratio * cos),
            "bpfi": self.n_balls / 2 * (1 + ratio * cos),
            "bsf": self.pitch_diameter_mm / (2 * self.ball_diameter_mm) * (1 - (ratio * cos) ** 2),
            "ftf": 0.5 * (1 - ratio * cos),
        }


@dataclass(frozen=True)
class SimulatorConfig:
    """Sensor and machine constants. Rates in Hz, amplitudes in g at ``REFERENCE_SPEED_HZ``."""

    sample_rate: float = 6400.0
    axes: int = 3
    speed_range_hz: tuple[float, float] = (15.0, 50.0)
    load_range: tuple[float, float] = (0.2, 1.0)
    dwell_s: tuple[float, float] = (4.0, 15.0)  # how long a speed/load setting is held
    ramp_s: tuple[float, float] = (0.5, 3.0)  # how long a change between settings takes
    resonance_hz: float = 2600.0
    resonance_damping: float = 0.03
    low_mode_hz: float = 420.0
    sensor_noise_g: float = 0.004
    full_scale_g: float = 16.0
    bearing: BearingGeometry = field(default_factory=BearingGeometry)


@dataclass(frozen=True)
class FaultSchedule:
    """A fault ``kind`` appearing at ``onset_s`` and growing linearly over ``growth_s`` seconds."""

    kind: str = "none"
    onset_s: float = 0.0
    start_severity: float = 0.0
    end_severity: float = 0.0
    growth_s: float = 60.0

    def severity_at(self, t: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return np.zeros_like(t)
        progress = np.clip((t - self.onset_s) / max(self.growth_s, 1e-9), 0.0, 1.0)
        severity = self.start_severity + (self.end_severity - self.start_severity) * progress
        return np.where(t >= self.onset_s, severity, 0.0)


class OperatingSchedule:
    """Seeded, endless speed/load profile: dwells joined by linear ramps
    (``SimulatorConfig.dwell_s``/``ramp_s``).

    Speed and load changes are *normal* operation; the model must not alarm on them.
    """

    def __init__(self, rng: np.random.Generator, config: SimulatorConfig) -> None:
        self._rng = rng
        self._config = config
        speed, load = self._draw()
        self._times = [0.0]
        self._speeds = [speed]
        self._loads = [load]

    def _draw(self) -> tuple[float, float]:
        lo, hi = self._config.speed_range_hz
        speed = float(np.exp(self._rng.uniform(np.log(lo), np.log(hi))))
        return speed, float(self._rng.uniform(*self._config.load_range))

    def _extend(self, until_s: float) -> None:
        while self._times[-1] <= until_s:
            dwell = self._rng.uniform(*self._config.dwell_s)
            ramp = self._rng.uniform(*self._config.ramp_s)
            speed, load = self._draw()
            t = self._times[-1]
            self._times += [t + dwell, t + dwell + ramp]
            self._speeds += [self._speeds[-1], speed]
            self._loads += [self._loads[-1], load]

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shaft speed (Hz) and load (0..1) at times ``t`` (s)."""
        self._extend(float(t[-1]))
        return np.interp(t, self._times, self._speeds), np.interp(t, self._times, self._loads)


class ConstantSchedule:
    """A machine held at one speed (Hz) and load: for tests and for envelope-spectrum checks."""

    def __init__(self, speed_hz: float, load: float = 0.7) -> None:
        self.speed_hz, self.load = float(speed_hz), float(load)

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full_like(t, self.speed_hz), np.full_like(t, self.load)


class _Resonator:
    """A damped second-order mode, impulse response peak ≈ 1, with its state carried across chunks."""

    def __init__(self, frequency_hz: float, damping: float, sample_rate: float, axes: int):
        theta = 2 * np.pi * frequency_hz / sample_rate
        radius = np.exp(-damping * theta)
        self.b = np.array([np.sin(theta)])
        self.a = np.array([1.0, -2 * radius * np.cos(theta), radius**2])
        # white noise of unit variance in → this RMS out
        self.noise_gain = float(np.sqrt(np.sum(signal.lfilter(self.b, self.a, _unit(4096)) ** 2)))
        self._state = np.zeros((axes, 2))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter ``x`` of shape (axes, n)."""
        y, self._state = signal.lfilter(self.b, self.a, x, axis=-1, zi=self._state)
        return y


def _unit(n: int) -> np.ndarray:
    impulse = np.zeros(n)
    impulse[0] = 1.0
    return impulse


class MachineSimulator:
    """Renders consecutive chunks of one machine's vibration, shape ``(n, axes)`` in g (float32)."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        seed: int = 0,
        fault: FaultSchedule | None = None,
        schedule: OperatingSchedule | ConstantSchedule | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.fault = fault or FaultSchedule()
        # one independent stream per noise source, so the output does not depend on chunking
        streams = np.random.SeedSequence(seed).spawn(6)
        rng = np.random.default_rng(streams[0])
        self._noise_rng = [np.random.default_rng(s) for s in streams[1:4]]
        self.schedule = schedule or OperatingSchedule(
            np.random.default_rng(streams[4]), self.config
        )
        impact_rng = np.random.default_rng(streams[5])
        fs, axes = self.config.sample_rate, self.config.axes
        # unit-to-unit spread of identical machines: ±5 % per component
        self._gain = dict(
            zip(("h1", "h2", "hk", "noise", "low"), rng.lognormal(0, 0.05, 5), strict=True)
        )
        self._harmonic_phase = rng.uniform(0, 2 * np.pi, 12)
        self._resonance = _Resonator(
            self.config.resonance_hz, self.config.resonance_damping, fs, axes
        )
        self._impact_mode = _Resonator(
            self.config.resonance_hz, self.config.resonance_damping, fs, axes
        )
        self._low_mode = _Resonator(self.config.low_mode_hz, 0.08, fs, axes)
        self._rattle_mode = _Resonator(self.config.low_mode_hz, 0.08, fs, axes)
        self._time_s = 0.0
        self._sample = 0
        self._shaft_cycles = 0.0
        self._impact_cycles = 0.0
        self._bearing_train = _ImpactTrain(impact_rng)
        self._rattle_train = _ImpactTrain(impact_rng)
        self._orders = self.config.bearing.fault_orders()

    @property
    def time_s(self) -> float:
        """Seconds rendered so far."""
        return self._time_s

    def render(self, n: int) -> np.ndarray:
        cfg = self.config
        fs = cfg.sample_rate
        t = self._time_s + np.arange(n) / fs
        speed, load = self.schedule.at(t)
        severity = self.fault.severity_at(t)
        kind = self.fault.kind
        shaft = self._shaft_cycles + np.cumsum(speed) / fs  # revolutions
        theta = 2 * np.pi * shaft
        s2 = (speed / REFERENCE_SPEED_HZ) ** 2
        g = self._gain
        sev = {k: (severity if kind == k else 0.0) for k in FAULT_KINDS}
        out = np.zeros((cfg.axes, n))
        radial = np.array([1.0, 1.0, 0.3])[: cfg.axes, None]
        axial = np.array([0.2, 0.2, 1.0])[: cfg.axes, None]

        def harmonic(order: float, index: int) -> tuple[np.ndarray, np.ndarray]:
            phase = order * theta + self._harmonic_phase[index % 12]
            return np.cos(phase), np.sin(phase)

        c1, s1 = harmonic(1, 0)
        a1 = 0.03 * g["h1"] * s2 * (1 + 1.5 * sev["imbalance"] + 0.5 * sev["misalignment"])
        out += a1 * radial * np.stack([c1, s1, c1])[: cfg.axes]
        c2, s2_ = harmonic(2, 1)
        a2 = 0.012 * g["h2"] * s2 * (1 + 2.0 * sev["misalignment"])
        a2_axial = 0.006 * g["h2"] * s2 * (1 + 5.0 * sev["misalignment"])
        out += a2 * radial * np.stack([c2, s2_, c2])[: cfg.axes]
        out += a2_axial * axial * np.stack([s2_, c2, s2_])[: cfg.axes]
        for k in range(3, 9):
            ck, sk = harmonic(k, k)
            ak = 0.006 * g["hk"] * s2 / k * (1 + 2.0 * sev["looseness"] * k / 3)
            out += ak * radial * np.stack([ck, sk, ck])[: cfg.axes]
        if np.any(sev["looseness"]):
            for j, order in enumerate((0.5, 1.5, 2.5)):
                ch, sh = harmonic(order, 9 + j)
                out += 0.008 * sev["looseness"] * s2 * radial * np.stack([ch, sh, ch])[: cfg.axes]
            rattle = self._rattle_train(shaft, self._shaft_cycles, self._sample, cfg.axes)
            out += self._rattle_mode(rattle * 0.3 * sev["looseness"] * s2 * radial)

        # broadband: friction/flow noise ringing the housing resonance, a low mode, sensor noise
        level = (speed / REFERENCE_SPEED_HZ) * (0.6 + 0.4 * load)
        noise = self._noise_rng[0].standard_normal((n, cfg.axes)).T * level
        out += self._resonance(noise * 0.012 * g["noise"] / self._resonance.noise_gain)
        low = self._noise_rng[1].standard_normal((n, cfg.axes)).T * level
        out += self._low_mode(low * 0.01 * g["low"] / self._low_mode.noise_gain)

        bearing = {"outer_race": "bpfo", "inner_race": "bpfi", "ball": "bsf"}.get(kind)
        if bearing is not None:
            order = self._orders[bearing] * (2.0 if bearing == "bsf" else 1.0)
            cycles = self._impact_cycles + np.cumsum(speed * order) / fs
            impacts = self._bearing_train(cycles, self._impact_cycles, self._sample, cfg.axes)
            if bearing == "bpfi":
                impacts *= 1 + 0.8 * np.cos(theta)  # defect passes the load zone once a turn
            elif bearing == "bsf":
                impacts *= 1 + 0.8 * np.cos(theta * self._orders["ftf"])  # carried by the cage
            amplitude = 0.25 * severity * s2 * (0.5 + 0.5 * load)
            path = np.array([0.6, 1.0, 0.3])[: cfg.axes, None]  # load direction rings most
            out += self._impact_mode(impacts * amplitude * path)
            self._impact_cycles = float(cycles[-1])

        out += self._noise_rng[2].standard_normal((n, cfg.axes)).T * cfg.sensor_noise_g
        self._shaft_cycles = float(shaft[-1])
        self._sample += n
        self._time_s = self._sample / fs
        np.clip(out, -cfg.full_scale_g, cfg.full_scale_g, out=out)
        return out.T.astype(np.float32)


class _ImpactTrain:
    """Unit impacts each time a cycle counter passes an integer, with the timing jitter of slipping
    rolling elements (±1 % of a period) and ±20 % amplitude spread.

    Jitter and amplitude are tables indexed by impact number and impacts are delayed by a fixed 4 %
    of a period, so every jittered impact lands at or after its crossing and a pending impact is
    carried into the next chunk: the train does not depend on how rendering is chunked.
    """

    _TABLE = 4096

    def __init__(self, rng: np.random.Generator) -> None:
        self._jitter = np.clip(rng.normal(0.0, 0.01, self._TABLE), -0.03, 0.03) + 0.04
        self._height = rng.uniform(0.8, 1.2, self._TABLE)
        self._pending: list[tuple[int, float]] = []  # (absolute sample, height)

    def __call__(
        self, cycles: np.ndarray, start: float, first_sample: int, axes: int
    ) -> np.ndarray:
        n = len(cycles)
        first, last = int(np.floor(start)) + 1, int(np.floor(cycles[-1]))
        if last >= first:
            numbers = np.arange(first, last + 1)
            crossings = np.searchsorted(cycles, numbers)  # index of the first sample past k
            previous = np.concatenate([[start], cycles[:-1]])
            period = 1.0 / np.maximum(cycles[crossings] - previous[crossings], 1e-9)  # samples
            shift = np.round(self._jitter[numbers % self._TABLE] * period).astype(int)
            heights = self._height[numbers % self._TABLE]
            self._pending += list(
                zip((first_sample + crossings + shift).tolist(), heights.tolist(), strict=True)
            )
        train = np.zeros(n)
        keep = []
        for sample, height in self._pending:
            if sample < first_sample + n:
                train[max(sample - first_sample, 0)] += height
            else:
                keep.append((sample, height))
        self._pending = keep
        return np.broadcast_to(train, (axes, n)).copy()


def simulate_recording(
    duration_s: float,
    *,
    kind: str = "normal",
    severity: float = 0.0,
    seed: int = 0,
    config: SimulatorConfig | None = None,
) -> np.ndarray:
    """One recording of ``duration_s`` seconds, shape ``(n, axes)`` in g, with a fault present
    throughout at constant ``severity`` (``kind="normal"``: healthy), under changing speed/load."""
    if kind != "normal" and kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected normal or one of {FAULT_KINDS}")
    fault = FaultSchedule(kind, 0.0, severity, severity) if kind != "normal" else None
    simulator = MachineSimulator(config, seed=seed, fault=fault)
    return simulator.render(int(round(duration_s * simulator.config.sample_rate)))
