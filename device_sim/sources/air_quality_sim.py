"""A seeded simulator of a street-level gas-sensor station like the one in the UCI Air Quality data.

It produces the same columns as the UCI file: the hourly (or faster) responses of five metal-oxide
(MOX) sensors ``PT08.S1(CO)`` … ``PT08.S5(O3)``, temperature ``T`` (°C), relative humidity ``RH`` (%)
and absolute humidity ``AH`` (g/m³), and the reference analyser concentrations ``CO(GT)`` (mg/m³),
``NOx(GT)`` (ppb), ``NO2(GT)`` (µg/m³) and ``C6H6(GT)`` (µg/m³).

The physics is simple but has the effects that make gas-sensor calibration hard:

* traffic emissions with a diurnal double peak (08 h, 19 h) and quieter weekends, diluted by a slowly
  varying (AR(1)) atmospheric dispersion that is worse in winter;
* NO2 partly secondary (a power of NOx plus a background), O3 photochemical and titrated by NOx;
* each sensor responds as a power law of a weighted sum of gases (cross-sensitivities), with
  temperature and humidity coefficients, a slow baseline drift per sensor (a trend plus a random
  walk — why a model trained on earlier months degrades later) and 1.5 % multiplicative noise;
* occasional missing data: whole-station outages (all sensors NaN, as the UCI file's ``-200`` rows),
  single dropped values, and outages of each reference analyser (targets missing per row).

Everything derives from ``seed``: the same seed and the same sequence of ``generate`` calls give the
same data.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from scipy.signal import lfilter

from device_sim.sources.uci_air_csv import (
    NUMERIC_COLUMNS,
    SENSOR_COLUMNS,
    AirQualityTable,
    LoadReport,
    derived_time_column,
)

# The UCI columns in file order, less NMHC(GT): the simulator models no NMHC reference.
SIM_COLUMNS = tuple(name for name in NUMERIC_COLUMNS if name != "NMHC(GT)")
DEFAULT_START = datetime(2004, 3, 10, 18, tzinfo=timezone.utc)  # where the UCI file starts
GASES = ("CO", "C6H6", "NOx", "NO2", "O3")
GAS_SCALE = np.array([1.0, 5.0, 100.0, 50.0, 50.0])  # mg/m³, µg/m³, ppb, µg/m³, µg/m³
# Cross-sensitivity of each sensor (rows S1..S5) to each gas (columns in GASES order).
SENSITIVITY = np.array(
    [
        [1.0, 0.3, 0.2, 0.0, 0.0],  # S1, nominally CO
        [0.5, 1.0, 0.1, 0.0, 0.0],  # S2, nominally NMHC / benzene
        [0.2, 0.1, 1.0, 0.3, 0.0],  # S3, nominally NOx (response falls with gas)
        [0.3, 0.4, 0.1, 1.0, 0.3],  # S4, nominally NO2
        [0.4, 0.2, 0.5, 0.2, 0.6],  # S5, nominally O3
    ]
)
EXPONENT = np.array([0.55, 0.7, -0.45, 0.35, 0.5])  # power-law exponent of each sensor
BASE_RESPONSE = np.array([800.0, 550.0, 1300.0, 1150.0, 600.0])  # clean-air response units
TEMP_COEFF = np.array([0.004, 0.006, -0.005, 0.012, 0.003])  # per °C around 20 °C
HUMIDITY_COEFF = np.array([0.002, 0.001, -0.002, 0.003, 0.004])  # per % RH around 50 %
NOISE = 0.015  # multiplicative sensor noise (1 σ)
# Baseline drift: a per-sensor linear trend (σ 8 % per year) plus a random walk in log response
# (σ 0.08 %/√h, i.e. about 7.5 % after a year): together ~10 % a year, the order reported for MOX
# sensors in the field. Drift is why a model trained on earlier months degrades on later ones.
DRIFT_TREND_PER_YEAR = 0.08
DRIFT_WALK_PER_HOUR = 0.0008


def absolute_humidity(temperature_c: np.ndarray, relative_humidity: np.ndarray) -> np.ndarray:
    """Absolute humidity in g/m³ from temperature (°C) and relative humidity (%), Magnus formula."""
    saturation_hpa = 6.112 * np.exp(17.67 * temperature_c / (temperature_c + 243.5))
    return relative_humidity / 100.0 * saturation_hpa * 216.74 / (273.15 + temperature_c)


class AirQualitySimulator:
    """Generates consecutive rows every ``step_seconds`` (3600 s: hourly; faster is allowed)."""

    def __init__(
        self,
        seed: int = 0,
        *,
        step_seconds: float = 3600.0,
        start: datetime = DEFAULT_START,
        station_missing_rate: float = 0.002,
        value_missing_rate: float = 0.002,
        reference_missing_rate: float = 0.003,
    ) -> None:
        if step_seconds <= 0:
            raise ValueError("step_seconds must be > 0")
        self.seed = seed
        self.step_seconds = float(step_seconds)
        self._rng = np.random.default_rng(seed)
        self._t = int(start.timestamp())
        self._hours_per_step = self.step_seconds / 3600.0
        # Per-station constants: how fast each sensor drifts (fraction per year) and its unit spread.
        self._drift_trend = self._rng.normal(0.0, DRIFT_TREND_PER_YEAR, 5)
        self._unit_gain = np.exp(self._rng.normal(0.0, 0.05, 5))
        self._state = {"temp": 0.0, "rh": 0.0, "disp": 0.0}
        self._walk = np.zeros(5)
        self._outage = {"station": 0.0, "CO": 0.0, "NOx": 0.0, "C6H6": 0.0}
        self.rates = {
            "station": station_missing_rate,
            "value": value_missing_rate,
            "reference": reference_missing_rate,
        }
        self._elapsed_hours = 0.0

    def _ar1(self, key: str, n: int, persistence_per_hour: float, sd: float) -> np.ndarray:
        """An AR(1) process continued from the previous call (stationary sd ``sd``)."""
        phi = persistence_per_hour**self._hours_per_step
        innovations = self._rng.normal(0.0, sd * np.sqrt(1 - phi**2), n)
        out, _ = lfilter([1.0], [1.0, -phi], innovations, zi=[phi * self._state[key]])
        self._state[key] = float(out[-1]) if n else self._state[key]
        return out

    def _outages(self, key: str, n: int, rate_per_hour: float, mean_hours: float) -> np.ndarray:
        """Boolean mask of rows inside an outage; outages start at ``rate_per_hour``."""
        mask = np.zeros(n, dtype=bool)
        starts = self._rng.random(n) < rate_per_hour * self._hours_per_step
        lengths = self._rng.exponential(mean_hours, n) + 1.0
        remaining = self._outage[key]
        for i in range(n):
            if remaining <= 0 and starts[i]:
                remaining = lengths[i]
            if remaining > 0:
                mask[i] = True
                remaining -= self._hours_per_step
        self._outage[key] = remaining
        return mask

    def generate(self, n_rows: int) -> AirQualityTable:
        """The next ``n_rows`` rows (and advance the clock); NaN marks missing values."""
        n = int(n_rows)
        rng = self._rng
        timestamps = self._t + (np.arange(n) * self.step_seconds).astype(np.int64)
        self._t = int(timestamps[-1] + self.step_seconds) if n else self._t
        hours = self._elapsed_hours + np.arange(n) * self._hours_per_step
        self._elapsed_hours += n * self._hours_per_step
        hour = derived_time_column(timestamps, "hour") + (timestamps % 3600) / 3600.0
        weekday = derived_time_column(timestamps, "weekday")
        day_of_year = (timestamps // 86400 % 365.25).astype(np.float64)
        summer = np.sin(2 * np.pi * (day_of_year - 100) / 365.25)  # +1 in July, -1 in January

        temperature = (
            15
            + 9 * summer
            + 4 * np.sin(2 * np.pi * (hour - 9) / 24)
            + self._ar1("temp", n, 0.98, 2.5)
        )
        rh = np.clip(60 - 1.6 * (temperature - 15) + self._ar1("rh", n, 0.95, 8.0), 9, 95)
        ah = absolute_humidity(temperature, rh)

        traffic = (
            0.15
            + np.exp(-0.5 * ((hour - 8) / 1.5) ** 2)
            + 0.9 * np.exp(-0.5 * ((hour - 19) / 2.0) ** 2)
        )
        traffic *= np.where(weekday == 5, 0.65, np.where(weekday == 6, 0.45, 1.0))
        stagnation = np.exp(self._ar1("disp", n, 0.96, 0.35)) * (1 - 0.3 * summer)
        emission = traffic * stagnation

        def lognormal(sd: float) -> np.ndarray:
            return np.exp(rng.normal(0.0, sd, n))

        co = 0.2 + 3.2 * emission * lognormal(0.15)
        c6h6 = 0.3 + 4.0 * (co - 0.1) ** 1.15 * lognormal(0.12)
        nox = 15 + 190 * emission * lognormal(0.2)
        no2 = 18 + 2.2 * nox**0.75 * lognormal(0.1) + 8 * (1 + summer)
        sun = np.maximum(0.0, np.sin(np.pi * (hour - 6) / 12))
        o3 = np.maximum(2.0, 25 + 70 * sun * (0.6 + 0.4 * summer) - 0.12 * nox) * lognormal(0.1)
        gases = np.stack([co, c6h6, nox, no2, o3], axis=1)

        drift_walk = np.cumsum(
            rng.normal(0.0, DRIFT_WALK_PER_HOUR * np.sqrt(self._hours_per_step), (n, 5)), axis=0
        )
        drift_walk += self._walk
        if n:
            self._walk = drift_walk[-1].copy()
        drift = (1 + self._drift_trend * hours[:, None] / 8760.0) * np.exp(drift_walk)
        load = 1 + (gases / GAS_SCALE) @ SENSITIVITY.T
        sensors = (
            BASE_RESPONSE
            * self._unit_gain
            * drift
            * load**EXPONENT
            * (1 + TEMP_COEFF * (temperature[:, None] - 20))
            * (1 + HUMIDITY_COEFF * (rh[:, None] - 50))
            * np.exp(rng.normal(0.0, NOISE, (n, 5)))
        )

        station_down = self._outages("station", n, self.rates["station"], 8.0)
        sensors[station_down] = np.nan
        weather = np.stack([temperature, rh, ah], axis=1)
        weather[station_down] = np.nan
        sensors[rng.random((n, 5)) < self.rates["value"]] = np.nan
        references = {"CO": co, "C6H6": c6h6, "NOx": nox, "NO2": no2}
        for key in ("CO", "NOx", "C6H6"):
            down = self._outages(key, n, self.rates["reference"], 24.0)
            references[key] = np.where(down, np.nan, references[key])
            if key == "NOx":  # one chemiluminescence analyser measures NOx and NO2
                references["NO2"] = np.where(down, np.nan, references["NO2"])

        columns = {
            "CO(GT)": references["CO"],
            "C6H6(GT)": references["C6H6"],
            "NOx(GT)": references["NOx"],
            "NO2(GT)": references["NO2"],
            "T": weather[:, 0],
            "RH": weather[:, 1],
            "AH": weather[:, 2],
            **{name: sensors[:, i] for i, name in enumerate(SENSOR_COLUMNS)},
        }
        values = np.stack([columns[name] for name in SIM_COLUMNS], axis=1)
        report = LoadReport(source=f"simulator(seed={self.seed})", format="sim", rows_parsed=n)
        return AirQualityTable(
            columns=SIM_COLUMNS,
            values=values,
            timestamps=timestamps,
            row_seconds=self.step_seconds,
            report=report,
        )


def simulate(n_rows: int, seed: int = 0, *, step_seconds: float = 3600.0) -> AirQualityTable:
    """``n_rows`` consecutive simulated rows from a fresh simulator (a training/evaluation set)."""
    return AirQualitySimulator(seed, step_seconds=step_seconds).generate(n_rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m device_sim.sources.air_quality_sim --days 30 --out station.csv``: a UCI-format file."""
    import argparse

    from device_sim.sources.uci_air_csv import write_uci_csv

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--days", type=int, default=30, help="days of hourly rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="CSV file to write (UCI Air Quality format)")
    args = parser.parse_args(argv)
    write_uci_csv(simulate(24 * args.days, seed=args.seed), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
