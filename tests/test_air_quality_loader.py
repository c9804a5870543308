"""The UCI Air Quality / generic CSV loader and the sources built on it (numpy + csv only)."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import numpy as np
import pytest
from air_quality_fixtures import UCI_HEADER, model_less_bundle, write_small_uci

from device_sim.errors import DataError
from device_sim.features.air_quality import AirQualityWindowConfig
from device_sim.sources import open_source
from device_sim.sources.air_quality import open_source as open_air_source
from device_sim.sources.air_quality_sim import AirQualitySimulator, simulate
from device_sim.sources.uci_air_csv import load_csv, write_uci_csv


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def test_uci_file_reads_decimal_commas_minus_200_trailing_columns_and_empty_rows(tmp_path):
    table = load_csv(write_small_uci(tmp_path / "AirQualityUCI.csv"))
    assert table.report.format == "uci"
    assert table.column("CO(GT)")[0] == pytest.approx(2.6)
    assert table.column("AH")[0] == pytest.approx(0.7578)
    assert table.column("PT08.S1(CO)")[:3].tolist() == [1360, 1292, 1402]
    # line 5: references missing (-200), sensors present
    assert np.isnan(table.column("CO(GT)")[3]) and np.isnan(table.column("NO2(GT)")[3])
    assert table.column("PT08.S1(CO)")[3] == 1376
    assert table.report.empty_rows == 2
    assert table.report.ignored_columns == []
    assert table.timestamps[0] == epoch("2004-03-10T18:00")
    assert table.column("hour")[0] == 18 and table.column("weekday")[0] == 2  # a Wednesday


def test_malformed_line_is_skipped_counted_and_located_not_guessed(tmp_path):
    table = load_csv(write_small_uci(tmp_path / "AirQualityUCI.csv"))
    assert table.report.malformed_rows == 1
    line, reason = table.report.malformed_examples[0]
    assert line == 6 and "12x72" in reason  # the header is line 1
    # 22:00 (malformed) and 23:00 (absent) are both NaN rows on the hourly grid, not dropped
    hours = table.column("hour").tolist()
    assert hours == [18, 19, 20, 21, 22, 23, 0, 1]
    assert np.all(np.isnan(table.values[4:6]))
    assert table.report.gap_rows_inserted == 2


def test_a_file_with_no_usable_row_is_a_data_error_that_says_why(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(UCI_HEADER + "\n10/03/2004;18.00.00;x;y;z;;\n;;;;\n")
    with pytest.raises(DataError, match="no usable data row.*1 malformed"):
        load_csv(path)


def test_generic_csv_maps_columns_and_averages_faster_readings_per_hour(tmp_path):
    path = tmp_path / "station.csv"
    path.write_text(
        "time,s1,s3,temp,extra,co_ref\n"
        "2024-05-01T08:00:00,1000,800,20.0,7,1.0\n"
        "2024-05-01T08:30:00,1100,NA,22.0,7,\n"
        "2024-05-01T09:10:00,900,700,21.0,7,2.0\n"
    )
    column_map = (
        ("time", "timestamp"),
        ("s1", "PT08.S1(CO)"),
        ("s3", "PT08.S3(NOx)"),
        ("temp", "T"),
        ("co_ref", "CO(GT)"),
    )
    table = load_csv(path, column_map)
    assert table.report.format == "generic"
    assert table.report.ignored_columns == ["extra"]
    assert table.report.rows_averaged == 1
    assert table.column("PT08.S1(CO)").tolist() == [1050, 900]
    assert table.column("PT08.S3(NOx)").tolist() == [800, 700]  # NaN is not averaged in
    assert table.column("T").tolist() == [21.0, 21.0]
    assert table.column("CO(GT)").tolist() == [1.0, 2.0]
    with pytest.raises(DataError, match="--column SOURCE=NO2"):
        table.column("NO2(GT)")


def test_column_map_naming_a_missing_source_column_is_a_clear_error(tmp_path):
    path = tmp_path / "station.csv"
    path.write_text("time,s1\n2024-05-01T08:00:00,1000\n")
    with pytest.raises(DataError, match=r"\['sensor1'\] are not in the header"):
        load_csv(path, (("sensor1", "PT08.S1(CO)"),))


def test_simulated_station_round_trips_through_the_uci_format(tmp_path):
    table = simulate(24 * 10, seed=4)
    loaded = load_csv(write_uci_csv(table, tmp_path / "sim.csv"))
    assert loaded.report.malformed_rows == 0 and loaded.report.empty_rows == 3
    np.testing.assert_array_equal(loaded.timestamps, table.timestamps)
    for name, tolerance in (("PT08.S2(NMHC)", 0.5), ("C6H6(GT)", 0.05), ("AH", 5e-5)):
        original, read = table.column(name), loaded.column(name)
        np.testing.assert_array_equal(np.isnan(read), np.isnan(original))
        finite = np.isfinite(original)
        assert np.max(np.abs(read[finite] - original[finite])) <= tolerance


def test_simulator_is_reproducible_from_its_seed_and_has_gaps():
    first = AirQualitySimulator(7).generate(24 * 60)
    again = AirQualitySimulator(7).generate(24 * 60)
    other = AirQualitySimulator(8).generate(24 * 60)
    np.testing.assert_array_equal(first.values, again.values)
    assert not np.allclose(np.nan_to_num(first.values), np.nan_to_num(other.values))
    sensors = first.matrix(["PT08.S1(CO)", "PT08.S2(NMHC)"])
    assert 0 < np.mean(np.isnan(sensors)) < 0.1
    # traffic: CO at the 08 h rush is higher than at 03 h on weekdays
    co, hour, weekday = first.column("CO(GT)"), first.column("hour"), first.column("weekday")
    rush = np.nanmean(co[(hour == 8) & (weekday < 5)])
    night = np.nanmean(co[(hour == 3) & (weekday < 5)])
    assert rush > 2 * night


def _config() -> AirQualityWindowConfig:
    inputs = ("PT08.S1(CO)", "T", "hour")
    rows = np.array([[1000.0, 10.0, 0.0], [1200.0, 20.0, 1.0]])
    return AirQualityWindowConfig.fitted(inputs, ("log", "linear", "hour"), rows, window_rows=2)


def test_file_source_replays_rows_in_the_bundles_input_order(tmp_path):
    bundle = model_less_bundle(tmp_path, _config())
    source = open_source(bundle, "file", path=write_small_uci(tmp_path / "a.csv"))
    first = source.read(3)
    assert first.shape == (3, 3)
    assert first[:, 0].tolist() == [1360, 1292, 1402]
    assert first[:, 1].tolist() == pytest.approx([13.6, 13.3, 11.9])
    assert first[:, 2].tolist() == [18, 19, 20]
    assert source.last_references[0].tolist() == pytest.approx([2.6, 113, 11.9])
    rest = source.read(100)
    assert len(rest) == 5 and np.isnan(rest[1:3, 0]).all()
    assert source.read(1) is None
    assert source.sample_rate == pytest.approx(1 / 3600)


def test_stdin_source_streams_csv_rows_as_each_hour_completes(tmp_path):
    bundle = model_less_bundle(tmp_path, _config())
    stream = io.StringIO(
        "timestamp,PT08.S1(CO),T\n"
        "2024-05-01T08:00:00,1000,20\n"
        "2024-05-01T08:30:00,1100,22\n"
        "garbage line,with,too,many,fields\n"
        "2024-05-01T10:00:00,900,21\n"
    )
    source = open_air_source(bundle, "stdin", stream=stream)
    rows = source.read(10)
    assert rows[:, 0][0] == 1050 and np.isnan(rows[1, 0]) and rows[2, 0] == 900
    assert rows[:, 2].tolist() == [8, 9, 10]
    assert source.report.malformed_rows == 1
    assert source.read(1) is None


def test_sim_source_gives_rows_and_references_of_the_same_hours(tmp_path):
    bundle = model_less_bundle(tmp_path, _config())
    source = open_source(bundle, "sim", seed=3)
    rows = source.read(48)
    assert rows.shape == (48, 3)
    assert source.last_references.shape == (48, 3)
    assert rows[:24, 2].tolist() == [(18 + h) % 24 for h in range(24)]


def test_uci_file_resaved_with_commas_and_colon_times_is_read_too(tmp_path):
    """A common re-saved variant: ',' separator, decimal point, H:MM:SS, no leading zero day."""
    path = tmp_path / "AirQualityUCI.csv"
    header = UCI_HEADER.replace(";", ",").rstrip(",")
    path.write_text(
        header + "\n"
        "3/04/2005,23:00:00,1.2,1100,-200,5.1,769,170,722,128,1147,1049,14.3,52.5,0.8497\n"
        "4/04/2005,0:00:00,0.9,1012,-200,3.5,683,117,801,93,1073,816,14.2,51.4,0.8275\n"
    )
    table = load_csv(path)
    assert table.report.format == "uci" and table.report.malformed_rows == 0
    assert table.column("CO(GT)").tolist() == [1.2, 0.9]
    assert np.isnan(table.column("NMHC(GT)")).all()
    assert table.column("hour").tolist() == [23, 0]
    assert table.timestamps[0] == epoch("2005-04-03T23:00")
