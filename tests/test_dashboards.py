"""The dashboards' widgets driven directly (as the browser's widget changes would)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from metermatrix import dashboards, queries
from metermatrix.demo import load_demo
from metermatrix.fleet import REGIONS
from metermatrix.storage import MeterRecord, Reading, open_storage

TIMEZONE = "Asia/Singapore"
NOW = datetime(2026, 3, 18, 6, 10, tzinfo=UTC)  # 14:10 in Singapore
TODAY = date(2026, 3, 18)
AASHIMA, CARLOS = 999999999, 555555555


@pytest.fixture
def data_dir(tmp_path: Path, backend_database: str | None) -> Path:
    """The demo data ending yesterday; Aashima has sent 4 readings today. On the
    postgresql run of ``backend`` the database is PostgreSQL (``database`` below)."""
    directory = tmp_path / "data"
    storage = open_storage(directory, database=backend_database)
    load_demo(storage, TODAY - timedelta(days=1))
    with storage.transaction():
        storage.add_readings([Reading(AASHIMA, TODAY, slot, 400) for slot in range(4)])
    storage.close()
    return directory


@pytest.fixture
def source(data_dir: Path, backend_database: str | None) -> dashboards.DataSource:
    return dashboards.DataSource.from_environment({
        "METERMATRIX_DATA_DIR": str(data_dir), "METERMATRIX_TIMEZONE": TIMEZONE,
        "METERMATRIX_DATABASE": backend_database or ""})


def clock() -> datetime:
    return NOW


def test_url_parameters_are_read_from_the_query_string():
    assert dashboards.request_query({"QUERY_STRING": "period=yesterday&region=East&x="}) == {
        "period": "yesterday", "region": "East"}
    assert dashboards.request_query({}) == {}


def test_meter_ids_may_be_written_with_dashes_and_any_separator():
    assert dashboards.parse_meter_ids("999-999-999, 555555555;12 x 12") == [
        AASHIMA, CARLOS, 12]


def test_the_dashboard_opens_on_the_period_and_region_of_the_url(source):
    board = dashboards.ManagementDashboard(source, {"period": "yesterday", "region": "West"},
                                           clock)
    assert board.redrawing.redraws == 1
    assert "Yesterday (2026-03-17)" in board.redrawing.status.value
    table = board.tables["consumption"].value
    assert "<th>West</th>" in table and "<th>East</th>" not in table
    for chart in board.charts.values():
        assert chart.format == "svg+xml" and b"<svg" in bytes(chart.value)[:400]


def test_unknown_url_parameters_fall_back_to_today_and_all_regions(source):
    board = dashboards.ManagementDashboard(source, {"period": "forever", "region": "Mars"}, clock)
    assert board.picker.name.value == "current-day"
    assert board.chosen_regions() is None
    assert board.tables["consumption"].value.split("<tbody>")[1].count("<tr>") == 5


def test_changing_a_widget_redraws(source):
    board = dashboards.ManagementDashboard(source, {}, clock)
    first = board.charts["region-bars"].value
    board.picker.name.value = "prev-month"
    assert board.redrawing.redraws == 2
    assert "Last month (2026-02-01 to 2026-02-28)" in board.redrawing.status.value
    assert board.charts["region-bars"].value != first
    board.region.value = "North"
    assert board.redrawing.redraws == 3
    assert "<th>North</th>" in board.tables["completeness"].value
    assert "<th>East</th>" not in board.tables["top"].value


def test_todays_operations_show_who_sent_what(source):
    board = dashboards.ManagementDashboard(source, {"region": "West"}, clock)
    silent = board.tables["silent"].value
    assert "meters sent nothing today" in silent
    assert "Aashima" not in silent
    assert "<th>999999999</th>" in board.tables["top"].value


def test_an_impossible_custom_range_is_reported_and_nothing_is_redrawn(source):
    board = dashboards.ManagementDashboard(source, {"period": "custom", "from": "2026-03-10",
                                                    "to": "2026-03-12"}, clock)
    assert "Custom range (2026-03-10 to 2026-03-12)" in board.redrawing.status.value
    assert not board.picker.first.disabled
    board.picker.first.value = "2026-03-14"
    assert "the end date is before the start date" in board.redrawing.status.value
    assert board.redrawing.redraws == 1


def test_the_day_boxes_show_the_named_periods_first_and_last_day_in_iso_form(source):
    board = dashboards.ManagementDashboard(source, {"period": "prev-month"}, clock)
    assert (board.picker.first.value, board.picker.last.value) == ("2026-02-01", "2026-02-28")
    assert board.picker.first.disabled and board.picker.last.disabled
    board.picker.name.value = "current-week"
    assert (board.picker.first.value, board.picker.last.value) == ("2026-03-16", "2026-03-18")
    assert board.redrawing.redraws == 2  # showing the days redraws nothing more
    board.picker.name.value = "custom"  # the custom range starts from the days shown
    assert "Custom range (2026-03-16 to 2026-03-18)" in board.redrawing.status.value
    board.picker.first.value = "1 Mar 2026"
    assert "Custom range (2026-03-01 to 2026-03-18)" in board.redrawing.status.value
    board.picker.last.value = "03/18/2026"
    assert "YYYY-MM-DD" in board.redrawing.status.value


def test_todays_totals_are_reused_until_the_database_changes(source, data_dir,
                                                             backend_database):
    first = source.snapshot(NOW)
    later = source.snapshot(NOW + timedelta(minutes=5))
    assert later.today_totals is first.today_totals
    assert later.now == NOW + timedelta(minutes=5)
    writer = open_storage(data_dir, database=backend_database)
    with writer.transaction():
        writer.add_readings([Reading(CARLOS, TODAY, 0, 300)])
    writer.close()
    young = source.snapshot(NOW + timedelta(minutes=6))
    assert CARLOS not in young.today_totals.index  # changed, but read under a minute ago
    fresh = source.snapshot(NOW + timedelta(minutes=6), fresh=True)
    assert fresh.today_totals.loc[CARLOS, "energy_kwh"] == pytest.approx(0.3)


def test_the_explorer_names_meters_it_does_not_know(source):
    explorer = dashboards.analysis_explorer(source, {"meters": "999999999,123456789",
                                                     "period": "yesterday"}, clock=clock)
    assert explorer.frames is not None and explorer.frames.meter_ids == (AASHIMA,)
    assert "unknown meters: 123456789" in explorer.redrawing.status.value
    explorer.meters.value = "555-555-555"
    assert explorer.frames.meter_ids == (CARLOS,)
    assert all(b"<svg" in bytes(chart.value)[:400] for chart in explorer.charts.values())


def test_the_explorer_without_meters_shows_the_first_two(source):
    explorer = dashboards.analysis_explorer(source, {}, clock=clock)
    assert explorer.frames is not None and len(explorer.frames.meter_ids) == 2
    assert explorer.picker.name.value == "current-month"


def test_a_folder_without_a_database_is_named_in_the_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="METERMATRIX_DATA_DIR"):
        dashboards.DataSource.from_environment({"METERMATRIX_DATA_DIR": str(tmp_path)})
    assert not (tmp_path / "metermatrix.sqlite3").exists()


def test_the_average_per_meter_is_the_one_on_the_residents_pages(source):
    """Last month in the demo: some meters miss days, which count neither as zero nor as
    a whole meter, on the dashboard as on a resident's page."""
    board = dashboards.ManagementDashboard(source, {"period": "prev-month"}, clock)
    period = board.picker.period(NOW)
    rows = board.tables["consumption"].value.split("<tbody>")[1].split("</tr>")
    shown = {row.split("<th>")[1].split("</th>")[0]: row.split("<td>")[3].split("</td>")[0]
             for row in rows if "<th>" in row}
    for region in REGIONS:
        meter_id = next(m.meter_id for m in source.storage.list_meters(region))
        resident = queries.meter_consumption(source.storage, meter_id, region, period, NOW)
        assert shown[region] == f"{resident.region_total_kwh:,.1f}"


def test_a_meter_created_today_is_not_due_for_last_month(data_dir):
    writer = open_storage(data_dir)
    east = len(writer.list_meters("East"))
    with writer.transaction():
        writer.save_meter(MeterRecord(300000001, "New", "F7654321K", "East"))
        writer.add_readings([Reading(300000001, TODAY, slot, 100) for slot in range(4)])
    writer.close()
    board = dashboards.ManagementDashboard(dashboards.DataSource(data_dir, TIMEZONE),
                                           {"period": "prev-month", "region": "East"}, clock)
    row = board.tables["completeness"].value.split("<th>East</th>")[1].split("</tr>")[0]
    cells = [cell.split("</td>")[0] for cell in row.split("<td>")[1:]]
    assert cells[5] == f"{east * 28 * 48:,}"  # Due in period: February, without the new one


def test_the_dashboard_reads_no_half_hourly_rows_but_todays_and_sums_no_meters_totals(
        tmp_path: Path):
    """Every statement a draw and a redraw run, traced on a real SQLite file: the packed
    half-hourly rows are read for today only (closed days come from region_daily,
    region_slots and each day's largest totals), first days from the meters table, and
    no statement sums every meter's daily totals."""
    directory = tmp_path / "data"
    storage = open_storage(directory)
    load_demo(storage, TODAY - timedelta(days=1))
    with storage.transaction():  # and a meter without a region, new today
        storage.add_meters([123456789])
        storage.add_readings([Reading(AASHIMA, TODAY, slot, 400) for slot in range(4)]
                             + [Reading(123456789, TODAY, 0, 100)])
    storage.close()
    source = dashboards.DataSource(directory, TIMEZONE)
    statements: list[str] = []
    source.storage._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    board = dashboards.ManagementDashboard(source, {"period": "current-month"}, clock)
    board.picker.name.value = "prev-month"
    board.region.value = "East"
    assert board.redrawing.redraws == 3
    today = (TODAY - date(1970, 1, 1)).days  # day numbers as in storage/packing.py
    rows = [sql for sql in statements if "day_readings" in sql]
    assert rows and all(f"day = {today}" in sql or "MIN(day) FROM day_readings" in sql
                        for sql in rows), rows
    assert not [sql for sql in statements if "daily_totals" in sql and "GROUP BY" in sql]
    assert any("FROM meters" in sql and "first_day" in sql for sql in statements)
