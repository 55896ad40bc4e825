"""Green Button feeds (NAESB REQ.21 ESPI): valid against usage.xsd and atom.xsd, and exact."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from metermatrix.greenbutton import (
    GreenButtonError,
    IntervalValue,
    local_time_parameters,
    usage_feed,
)
from tests.greenbutton_schema import SCHEMAS, espi_schema, validation_errors

SGT = ZoneInfo("Asia/Singapore")
NS = {"atom": "http://www.w3.org/2005/Atom", "espi": "http://naesb.org/espi"}
UPDATED = datetime(2026, 11, 18, 6, 10, tzinfo=UTC)


def half_hours(day: date, slots: range, tz: ZoneInfo = SGT, skip: tuple[int, ...] = ()
               ) -> list[IntervalValue]:
    midnight = datetime.combine(day, datetime.min.time(), tz)
    return [IntervalValue(midnight + timedelta(minutes=30 * slot), 100 + slot)
            for slot in slots if slot not in skip]


def feed(readings: list[IntervalValue], tz: ZoneInfo = SGT) -> etree._Element:
    return etree.fromstring(usage_feed(readings, usage_point_id="999999999", tz=tz,
                                       updated=UPDATED))


def test_the_schemas_load_offline_with_their_licence_notice() -> None:
    assert espi_schema() is not None
    text = (SCHEMAS / "NOTICE.md").read_text()
    assert "Apache License" in text and "usage.xsd" in text and "xml.xsd" in text
    assert (SCHEMAS / "LICENSE-2.0.txt").exists()


def test_a_feed_of_two_days_is_valid_espi() -> None:
    readings = half_hours(date(2026, 11, 16), range(48)) + half_hours(date(2026, 11, 17),
                                                                      range(20))
    xml = usage_feed(readings, usage_point_id="999999999", tz=SGT, updated=UPDATED)
    assert validation_errors(xml) == []
    assert xml.startswith(b"<?xml version='1.0' encoding='utf-8'?>")


def test_an_empty_feed_is_valid_espi() -> None:
    xml = usage_feed([], usage_point_id="999999999", tz=SGT, updated=UPDATED)
    assert validation_errors(xml) == []


def test_the_validation_catches_a_broken_feed() -> None:
    """The test can fail: a feed with a wrong element is refused by the schema."""
    xml = usage_feed(half_hours(date(2026, 11, 16), range(2)), usage_point_id="1", tz=SGT,
                     updated=UPDATED)
    broken = xml.replace(b"<espi:value>", b"<espi:amount>").replace(b"</espi:value>",
                                                                    b"</espi:amount>")
    assert validation_errors(broken)


def test_usage_point_local_time_and_reading_type_say_what_the_readings_are() -> None:
    root = feed(half_hours(date(2026, 11, 16), range(2)))
    assert root.findtext(".//espi:UsagePoint/espi:ServiceCategory/espi:kind", namespaces=NS) == "0"
    local = root.find(".//espi:LocalTimeParameters", NS)
    assert {child.tag.split("}")[1]: child.text for child in local} == {  # type: ignore[union-attr]
        "dstEndRule": "FFFFFFFF", "dstOffset": "0", "dstStartRule": "FFFFFFFF",
        "tzOffset": "28800"}
    reading_type = root.find(".//espi:ReadingType", NS)
    assert {child.tag.split("}")[1]: child.text for child in reading_type} == {  # type: ignore[union-attr]
        "accumulationBehaviour": "4", "commodity": "1", "flowDirection": "1",
        "intervalLength": "1800", "kind": "12", "powerOfTenMultiplier": "0", "uom": "72"}
    assert root.find(".//espi:MeterReading", NS) is not None


def test_interval_blocks_are_local_days_and_missing_half_hours_are_absent() -> None:
    day = date(2026, 11, 16)
    root = feed(half_hours(day, range(48), skip=(3, 17)) + half_hours(day + timedelta(days=1),
                                                                      range(4)))
    blocks = root.findall(".//espi:IntervalBlock", NS)
    assert len(blocks) == 2
    midnight = datetime.combine(day, datetime.min.time(), SGT)
    assert blocks[0].findtext("espi:interval/espi:start", namespaces=NS) == str(
        int(midnight.timestamp()))
    assert blocks[0].findtext("espi:interval/espi:duration", namespaces=NS) == "86400"
    starts = [int(text) for text in blocks[0].xpath(
        "espi:IntervalReading/espi:timePeriod/espi:start/text()", namespaces=NS)]
    expected = [int((midnight + timedelta(minutes=30 * slot)).timestamp())
                for slot in range(48) if slot not in (3, 17)]
    assert starts == expected  # 46 readings: the two missing ones are not written as zero
    values = blocks[0].xpath("espi:IntervalReading/espi:value/text()", namespaces=NS)
    assert values[:4] == ["100", "101", "102", "104"] and "0" not in values
    durations = set(blocks[0].xpath(".//espi:timePeriod/espi:duration/text()", namespaces=NS))
    assert durations == {"1800"}


def test_the_same_readings_give_the_same_document() -> None:
    readings = half_hours(date(2026, 11, 16), range(5))
    first = usage_feed(readings, usage_point_id="999999999", tz=SGT, updated=UPDATED)
    again = usage_feed(list(reversed(readings)), usage_point_id="999999999", tz=SGT,
                       updated=UPDATED)
    assert first == again


def test_utc_has_a_zero_offset_and_daylight_saving_zones_are_refused() -> None:
    assert local_time_parameters(ZoneInfo("UTC"), UPDATED).tz_offset_s == 0
    with pytest.raises(GreenButtonError):
        local_time_parameters(ZoneInfo("Europe/London"), UPDATED)
    with pytest.raises(GreenButtonError):
        usage_feed([IntervalValue(UPDATED, -1)], usage_point_id="1", tz=SGT, updated=UPDATED)
