"""Consumption charts: what is drawn for each status, and the responsive SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.text import Text

from metermatrix.charts import (
    ACCENT,
    MISSING_FACE,
    NARROW,
    PARTIAL,
    WIDE,
    consumption_figure,
    consumption_svg,
    figure_to_svg,
)
from metermatrix.periods import Period, resolve_period

SGT = ZoneInfo("Asia/Singapore")
NOW = datetime(2026, 11, 27, 10, 5, tzinfo=SGT)


def half_hour_rows(status: list[str], energy_kwh: list[float]) -> pd.DataFrame:
    period = resolve_period("current-day", NOW, SGT)
    starts = pd.date_range(period.start, periods=48, freq="30min")
    count = len(status)
    return pd.DataFrame({
        "start": starts[:count], "day": [period.first_day] * count, "slot": range(count),
        "energy_kwh": energy_kwh, "status": status,
        "previous_kwh": np.linspace(0.1, 0.5, count),
        "region_average_kwh": np.full(count, 0.3),
    })


def day_period() -> Period:
    return resolve_period("current-day", NOW, SGT)


def collections_by_colour(figure: object) -> dict[str, PolyCollection]:
    found = {}
    for artist in figure.artists:  # type: ignore[attr-defined]
        if isinstance(artist, PolyCollection):
            found[to_hex(artist.get_facecolor()[0])] = artist
    return found


def texts(figure: object) -> list[str]:
    return [t.get_text() for t in figure.findobj(Text)]  # type: ignore[attr-defined]


def test_missing_half_hours_are_hatched_columns_not_zero_bars() -> None:
    status = ["ok", "missing", "ok", "missing"] + ["pending"] * 44
    energy = [0.4, np.nan, 0.2, np.nan] + [np.nan] * 44
    figure = consumption_figure(half_hour_rows(status, energy), day_period(), "Yesterday",
                                "West average")
    bars = collections_by_colour(figure)
    assert len(bars[ACCENT].get_paths()) == 2
    missing = bars[MISSING_FACE]
    assert missing.get_hatch() == "///"
    heights = [path.vertices[:, 1].max() for path in missing.get_paths()]
    assert len(heights) == 2 and min(heights) > 0.4  # full height, above every reading
    assert "No reading" in texts(figure)


def test_no_missing_entry_when_every_due_half_hour_has_a_reading() -> None:
    status = ["ok"] * 20 + ["pending"] * 28
    energy = [0.3] * 20 + [np.nan] * 28
    figure = consumption_figure(half_hour_rows(status, energy), day_period())
    assert MISSING_FACE not in collections_by_colour(figure)
    assert "No reading" not in texts(figure) and "Reading" in texts(figure)


def test_daily_chart_marks_today_as_partial() -> None:
    period = resolve_period("current-week", NOW, SGT)
    rows = pd.DataFrame({
        "start": pd.date_range(period.start, periods=5, freq="D"),
        "energy_kwh": [9.0, np.nan, 8.0, 7.5, 2.0],
        "status": ["complete", "missing", "incomplete", "complete", "today"],
    })
    figure = consumption_figure(rows, period)
    bars = collections_by_colour(figure)
    assert len(bars[PARTIAL].get_paths()) == 1
    assert {"Day total", "No reading", "Today so far", "Day with half hours missing",
            "kWh per day"} <= set(texts(figure))
    assert "Mon 23" in texts(figure)


def test_svg_scales_to_its_container() -> None:
    status = ["ok"] * 10 + ["pending"] * 38
    svg = consumption_svg(half_hour_rows(status, [0.5] * 10 + [np.nan] * 38), day_period())
    assert svg.startswith("<svg")
    opening = svg[: svg.index(">")]
    assert 'width="100%"' in opening and re.search(r'viewBox="0 0 [\d.]+ [\d.]+"', opening)
    assert "height=" not in opening
    ET.fromstring(svg)  # well-formed, embeddable inline


def test_svg_keeps_labels_as_text() -> None:
    status = ["ok"] * 4 + ["pending"] * 44
    svg = consumption_svg(half_hour_rows(status, [0.5] * 4 + [np.nan] * 44), day_period(),
                          "Yesterday", "West average")
    assert ">West average<" in svg and ">kWh per half hour<" in svg and ">06:00<" in svg


def test_same_rows_give_the_same_svg() -> None:
    rows = half_hour_rows(["ok"] * 48, list(np.linspace(0.1, 1.0, 48)))
    assert figure_to_svg(consumption_figure(rows, day_period())) == \
        figure_to_svg(consumption_figure(rows, day_period()))


def test_a_period_without_any_value_still_draws() -> None:
    rows = half_hour_rows(["missing"] * 2, [np.nan, np.nan])
    svg = consumption_svg(rows.assign(previous_kwh=np.nan, region_average_kwh=np.nan),
                          resolve_period("prev-hr", NOW, SGT), "The hour before", "East average")
    assert "No reading" in svg


def test_kwh_labels_are_evenly_spaced_round_numbers() -> None:
    for peak in (0.48, 0.54, 3.7, 27.0):
        rows = half_hour_rows(["ok"] * 4, [peak / 4, peak / 2, peak, peak / 3])
        figure = consumption_figure(rows.assign(previous_kwh=np.nan, region_average_kwh=np.nan),
                                    day_period())
        labels = [float(text) for text in texts(figure) if re.fullmatch(r"[\d.]+", text)]
        steps = np.diff(labels)
        assert len(labels) >= 3 and np.allclose(steps, steps[0]), (peak, labels)
        assert labels[0] == 0 and labels[-1] <= peak * 1.12


def test_svg_labels_are_the_figures_labels() -> None:
    rows = half_hour_rows(["ok", "missing"] + ["pending"] * 46, [0.4, np.nan] + [np.nan] * 46)
    figure = consumption_figure(rows, day_period(), "Yesterday", "West average")
    svg = consumption_svg(rows, day_period(), "Yesterday", "West average")
    in_svg = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
    assert sorted(in_svg) == sorted(t for t in texts(figure) if t)
    assert 'transform="rotate(-90' in svg  # the unit label stands upright


def ids_and_references(svg: str) -> tuple[set[str], set[str]]:
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    return ids, set(re.findall(r'url\(#([^)]+)\)', svg)) | set(re.findall(r'href="#([^"]+)"', svg))


def test_the_phone_and_desktop_charts_of_a_page_share_no_element_id() -> None:
    status = ["ok", "missing"] * 4 + ["pending"] * 40  # hatched columns: a pattern id each
    rows = half_hour_rows(status, [0.5, np.nan] * 4 + [np.nan] * 40)
    wide = consumption_svg(rows, day_period(), "Yesterday", "West average", WIDE)
    narrow = consumption_svg(rows, day_period(), "Yesterday", "West average", NARROW)
    wide_ids, wide_refs = ids_and_references(wide)
    narrow_ids, narrow_refs = ids_and_references(narrow)
    assert wide_ids and not wide_ids & narrow_ids
    assert wide_refs <= wide_ids and narrow_refs <= narrow_ids and narrow_refs
    ET.fromstring(narrow)


def test_the_phone_chart_shows_fewer_time_labels_and_marks_its_legend() -> None:
    rows = half_hour_rows(["ok"] * 48, [0.5] * 48)
    narrow = consumption_svg(rows, day_period(), "Yesterday", "West average", NARROW)
    wide = consumption_svg(rows, day_period(), "Yesterday", "West average", WIDE)
    times = re.compile(r">(\d\d:\d\d)<")
    assert times.findall(narrow) == ["00:00", "04:00", "08:00", "12:00", "16:00", "20:00"]
    assert len(times.findall(wide)) == 12
    legend = re.findall(r'<text class="legend"[^>]*>([^<]*)<', narrow)
    assert legend == ["Reading", "Yesterday", "West average"]
    width = float(re.search(r'viewBox="0 0 ([\d.]+)', narrow)[1])  # type: ignore[index]
    assert width == NARROW.size_in[0] * 72
