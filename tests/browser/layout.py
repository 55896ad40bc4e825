"""Whether a page fits its viewport: measured in the browser, checked in Python."""

from __future__ import annotations

VIEWPORTS = {"desktop": {"width": 1100, "height": 900}, "phone": {"width": 390, "height": 844}}
#: What the layout check measures on a page (CSS pixels): the page's width, the header's
#: items, the chart shown and its legend labels.
MEASURE = """() => {
  const box = (element) => { const r = element.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const chart = [...document.querySelectorAll('figure.chart svg')]
    .find((svg) => svg.getClientRects().length > 0);
  const header = [...document.querySelectorAll('header.top .brand, header.top nav > *')];
  const legend = chart ? [...chart.querySelectorAll('text.legend')] : [];
  const scale = chart ? chart.getBoundingClientRect().width / chart.viewBox.baseVal.width : 0;
  return {
    scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth,
    header: header.map(box), chart: chart ? box(chart) : null,
    legend: legend.map((text) => ({...box(text), text: text.textContent,
      fontPx: scale * parseFloat(getComputedStyle(text).fontSize)})),
  };
}"""


def overlaps(one: dict[str, float], other: dict[str, float]) -> bool:
    return (one["left"] < other["right"] and other["left"] < one["right"]
            and one["top"] < other["bottom"] and other["top"] < one["bottom"])


def check_layout(measured: dict[str, object], where: str) -> None:
    """The page fits its width, the header is one line, the chart and its legend fit."""
    width = measured["innerWidth"]
    assert measured["scrollWidth"] <= width, f"{where}: the page scrolls sideways"  # type: ignore[operator]
    header: list[dict[str, float]] = measured["header"]  # type: ignore[assignment]
    assert len(header) >= 3, where
    assert all(item["right"] <= width for item in header), f"{where}: header {header}"  # type: ignore[operator]
    assert max(item["top"] for item in header) < min(item["bottom"] for item in header), (
        f"{where}: the header wraps to a second line")
    chart: dict[str, float] | None = measured["chart"]  # type: ignore[assignment]
    if chart is None:
        return
    assert 0 <= chart["left"] and chart["right"] <= width, f"{where}: chart {chart}"  # type: ignore[operator]
    legend: list[dict[str, float]] = measured["legend"]  # type: ignore[assignment]
    assert len(legend) >= 2, where
    for label in legend:
        inside = (chart["left"] <= label["left"] and label["right"] <= chart["right"]
                  and chart["top"] <= label["top"] and label["bottom"] <= chart["bottom"])
        assert inside, f"{where}: legend {label['text']!r} is cut: {label} in {chart}"
        assert label["fontPx"] >= 11, f"{where}: legend {label['text']!r} too small"
    for index, label in enumerate(legend):
        for other in legend[index + 1:]:
            assert not overlaps(label, other), f"{where}: {label['text']!r} on {other['text']!r}"

