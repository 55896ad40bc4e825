"""Green Button "Download My Data" (NAESB REQ.21 ESPI): interval readings -> an Atom feed.

A pure function of its arguments, with no dependency on the rest of MeterMatrix:
``usage_feed(readings, usage_point_id=..., tz=..., updated=...)`` returns the XML bytes of
one Atom ``feed`` holding, each in its own ``entry``:

- ``UsagePoint`` (``ServiceCategory`` kind 0, electricity);
- ``LocalTimeParameters`` derived from the time zone (offsets [s]; daylight-saving rules
  ``FFFFFFFF`` for a zone without daylight saving);
- ``MeterReading`` and its ``ReadingType``: energy delivered to the customer (kind 12,
  commodity 1, flowDirection 1, accumulationBehaviour 4 "deltaData", uom 72 Wh,
  powerOfTenMultiplier 0) at a fixed interval length;
- one ``IntervalBlock`` per local day of the readings, each ``IntervalReading`` with its
  ``timePeriod`` (start in Unix seconds, duration [s]) and ``value`` [Wh].

Intervals without a reading are left out, never written as zero. Identifiers are
deterministic UUIDs derived from the usage point and the interval, so the same data gives
the same document.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import groupby

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"
#: Namespace under which the feed's identifiers are derived (uuid5).
ID_NAMESPACE = uuid.UUID("3f0f5e62-6a7e-4e0c-9a38-2c1f3e5d8b10")
#: No daylight saving: the rule value ESPI gives a zone that never changes its offset.
NO_DST_RULE = "FFFFFFFF"
#: The ReadingType of half-hourly (or any fixed-interval) energy delivered, in Wh.
READING_TYPE = (
    ("accumulationBehaviour", "4"),  # deltaData: each value is the energy of its interval
    ("commodity", "1"),  # electricity secondary metered
    ("flowDirection", "1"),  # forward: delivered to the customer
    ("kind", "12"),  # energy
    ("powerOfTenMultiplier", "0"),
    ("uom", "72"),  # Wh
)
SERVICE_KIND_ELECTRICITY = "0"


class GreenButtonError(ValueError):
    """The readings or the time zone cannot be written as a Green Button feed."""


@dataclass(frozen=True, slots=True)
class IntervalValue:
    """One interval's energy: ``start`` (timezone-aware) and ``energy_wh`` [Wh]."""

    start: datetime
    energy_wh: int


@dataclass(frozen=True, slots=True)
class LocalTimeParameters:
    """ESPI ``LocalTimeParameters``: offsets from UTC [s] and daylight-saving rules (hex)."""

    tz_offset_s: int
    dst_offset_s: int
    dst_start_rule: str
    dst_end_rule: str


def local_time_parameters(tz: tzinfo, at: datetime) -> LocalTimeParameters:
    """The zone's parameters around instant ``at``; zones with daylight saving are refused.

    The offset is checked at the start of each month over the year from ``at``: ESPI's
    rule encoding of a daylight-saving change is not written here.
    """
    base = at.astimezone(UTC)
    offsets = {(base + timedelta(days=31 * month)).astimezone(tz).utcoffset()
               for month in range(13)}
    dst = {(base + timedelta(days=31 * month)).astimezone(tz).dst() for month in range(13)}
    if len(offsets) != 1 or any(value not in (None, timedelta(0)) for value in dst):
        raise GreenButtonError("only time zones without daylight saving can be written")
    offset = offsets.pop() or timedelta(0)
    return LocalTimeParameters(int(offset.total_seconds()), 0, NO_DST_RULE, NO_DST_RULE)


def _unix_s(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise GreenButtonError("interval starts must be timezone-aware")
    return str(int(moment.timestamp()))


def _atom_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str
         ) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


@dataclass(frozen=True)
class _Feed:
    """The feed being built: its root, time stamp and the usage point's URL prefix."""

    root: ET.Element
    updated: str
    usage_point_id: str
    base_url: str

    def urn(self, *parts: object) -> str:
        name = "/".join(str(part) for part in (self.usage_point_id, *parts))
        return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, name)}"

    def entry(self, key: str, title: str, self_href: str, up_href: str,
              related: Sequence[str] = ()) -> ET.Element:
        """An entry with id, links, title and times; returns its ``content`` element."""
        entry = _sub(self.root, "entry")
        _sub(entry, "id", self.urn(key))
        _sub(entry, "link", href=self.base_url + self_href, rel="self")
        _sub(entry, "link", href=self.base_url + up_href, rel="up")
        for href in related:
            _sub(entry, "link", href=self.base_url + href, rel="related")
        _sub(entry, "title", title)
        content = _sub(entry, "content")
        _sub(entry, "published", self.updated)
        _sub(entry, "updated", self.updated)
        return content


def _interval(parent: ET.Element, tag: str, start: datetime, duration_s: int) -> None:
    interval = _sub(parent, tag)
    _sub(interval, "espi:duration", str(duration_s))
    _sub(interval, "espi:start", _unix_s(start))


def _add_blocks(feed: _Feed, readings: Sequence[IntervalValue], tz: tzinfo, interval_s: int,
                reading_path: str) -> None:
    """One IntervalBlock per local day of ``readings`` (in time order)."""
    for number, (day, values) in enumerate(
            groupby(readings, key=lambda value: value.start.astimezone(tz).date()), start=1):
        block_values = list(values)
        content = feed.entry(f"IntervalBlock/{day.isoformat()}", f"Readings of {day.isoformat()}",
                             f"{reading_path}/IntervalBlock/{number}",
                             f"{reading_path}/IntervalBlock")
        block = _sub(content, "espi:IntervalBlock")
        midnight = datetime.combine(day, datetime.min.time(), tz)
        _interval(block, "espi:interval", midnight,
                  int((datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)
                       - midnight).total_seconds()))
        for value in block_values:
            reading = _sub(block, "espi:IntervalReading")
            _interval(reading, "espi:timePeriod", value.start, interval_s)
            _sub(reading, "espi:value", str(value.energy_wh))


def _add_metadata(feed: _Feed, tz_params: LocalTimeParameters, interval_s: int, title: str
                  ) -> str:
    """UsagePoint, LocalTimeParameters, MeterReading and ReadingType; the reading's path."""
    point = "RetailCustomer/1/UsagePoint/1"
    reading = f"{point}/MeterReading/1"
    content = feed.entry("UsagePoint", title, point, "RetailCustomer/1/UsagePoint",
                         [f"{point}/MeterReading", "LocalTimeParameters/1"])
    usage_point = _sub(content, "espi:UsagePoint")
    _sub(_sub(usage_point, "espi:ServiceCategory"), "espi:kind", SERVICE_KIND_ELECTRICITY)
    content = feed.entry("LocalTimeParameters", "Local time", "LocalTimeParameters/1",
                         "LocalTimeParameters")
    local = _sub(content, "espi:LocalTimeParameters")
    _sub(local, "espi:dstEndRule", tz_params.dst_end_rule)
    _sub(local, "espi:dstOffset", str(tz_params.dst_offset_s))
    _sub(local, "espi:dstStartRule", tz_params.dst_start_rule)
    _sub(local, "espi:tzOffset", str(tz_params.tz_offset_s))
    content = feed.entry("MeterReading", "Energy delivered", reading, f"{point}/MeterReading",
                         [f"{reading}/IntervalBlock", "ReadingType/1"])
    _sub(content, "espi:MeterReading")
    content = feed.entry("ReadingType", f"Energy delivered per {interval_s // 60} minutes [Wh]",
                         "ReadingType/1", "ReadingType")
    reading_type = _sub(content, "espi:ReadingType")
    values = dict(READING_TYPE, intervalLength=str(interval_s))
    for name in ("accumulationBehaviour", "commodity", "flowDirection", "intervalLength",
                 "kind", "powerOfTenMultiplier", "uom"):  # the schema's order
        _sub(reading_type, f"espi:{name}", values[name])
    return reading


def usage_feed(readings: Iterable[IntervalValue], *, usage_point_id: str, tz: tzinfo,
               updated: datetime, interval_s: int = 1800, title: str = "Electricity",
               base_url: str = "") -> bytes:
    """The Green Button Atom feed (UTF-8 XML bytes) of ``readings`` at one usage point.

    ``readings``: the intervals that have a value, any order (missing intervals are simply
    not given); ``tz``: the local time zone (blocks are local days); ``updated``: the
    feed's time stamp; ``base_url``: prefix of the entries' links.
    """
    ordered = sorted(readings, key=lambda value: value.start)
    if any(value.energy_wh < 0 for value in ordered):
        raise GreenButtonError("energy delivered cannot be negative")
    tz_params = local_time_parameters(tz, ordered[0].start if ordered else updated)
    root = ET.Element("feed", {"xmlns": ATOM, "xmlns:espi": ESPI})
    feed = _Feed(root, _atom_time(updated), usage_point_id, base_url)
    _sub(root, "id", feed.urn("feed"))
    _sub(root, "title", f"Green Button usage feed: {title}")
    _sub(root, "updated", feed.updated)
    _sub(root, "link", href=base_url + "RetailCustomer/1/UsagePoint", rel="self")
    reading_path = _add_metadata(feed, tz_params, interval_s, title)
    _add_blocks(feed, ordered, tz, interval_s, reading_path)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
