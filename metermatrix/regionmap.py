"""A choropleth of Singapore's five planning regions, drawn with matplotlib PathPatches.

The outlines come from ``metermatrix/data/sg-regions.geojson`` (URA Master Plan 2019 Region
Boundary, see ``metermatrix/data/README.md``): MultiPolygons in WGS84 longitude/latitude.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib.colors as mcolors
import numpy as np
import orjson
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath

#: The bundled region outlines.
REGIONS_GEOJSON = Path(__file__).parent / "data" / "sg-regions.geojson"
#: Fill of a region without a value.
NO_DATA_COLOUR = "#d9d9d9"
_CMAP = "YlOrRd"


class RegionMapError(ValueError):
    """A region file that cannot be drawn."""


def _ring_path(ring: list[list[float]]) -> tuple[list[tuple[float, float]], list[int]]:
    """Vertices and codes of one closed ring."""
    points = [(float(x), float(y)) for x, y in ring]
    codes = ([int(MplPath.MOVETO)] + [int(MplPath.LINETO)] * (len(points) - 2)
             + [int(MplPath.CLOSEPOLY)])
    return points, codes


def _outline(geometry: dict[str, Any]) -> MplPath:
    """One compound path of a Polygon or MultiPolygon (holes included, even-odd filled)."""
    if geometry.get("type") == "Polygon":
        polygons = [geometry["coordinates"]]
    elif geometry.get("type") == "MultiPolygon":
        polygons = geometry["coordinates"]
    else:
        raise RegionMapError(f"unsupported geometry {geometry.get('type')!r}")
    vertices: list[tuple[float, float]] = []
    codes: list[int] = []
    for polygon in polygons:
        for ring in polygon:
            if len(ring) < 4:
                continue
            ring_vertices, ring_codes = _ring_path(ring)
            vertices.extend(ring_vertices)
            codes.extend(ring_codes)
    return MplPath(np.asarray(vertices), codes)


@cache
def region_outlines(path: Path = REGIONS_GEOJSON) -> dict[str, MplPath]:
    """Region name -> outline path (lon/lat), read once per file."""
    try:
        document = orjson.loads(path.read_bytes())
        features = document["features"]
        return {str(f["properties"]["region"]): _outline(f["geometry"]) for f in features}
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as error:
        raise RegionMapError(f"{path}: not a GeoJSON FeatureCollection of regions: {error}"
                             ) from error


def _ring_centroid(ring: np.ndarray) -> tuple[float, float, float]:
    """(area, x, y) of a closed ring by the shoelace formula."""
    x, y = ring[:, 0], ring[:, 1]
    cross = x[:-1] * y[1:] - x[1:] * y[:-1]
    area = cross.sum() / 2
    if area == 0:
        return 0.0, float(x.mean()), float(y.mean())
    cx = ((x[:-1] + x[1:]) * cross).sum() / (6 * area)
    cy = ((y[:-1] + y[1:]) * cross).sum() / (6 * area)
    return abs(float(area)), float(cx), float(cy)


def _label_point(outline: MplPath) -> tuple[float, float]:
    """Where to write a region's name: the centroid of its largest ring (the main land)."""
    rings = [np.asarray(polygon) for polygon in outline.to_polygons(closed_only=True)]
    _, x, y = max(_ring_centroid(ring) for ring in rings if len(ring) >= 4)
    return x, y


def fill_colours(values: Mapping[str, float], regions: list[str]) -> dict[str, str]:
    """Hex fill per region: darker is more; NO_DATA_COLOUR where the value is missing/NaN."""
    known = [v for r in regions if (v := values.get(r)) is not None and not math.isnan(v)]
    norm = mcolors.Normalize(vmin=min(known, default=0.0), vmax=max(known, default=1.0))
    cmap = colormaps[_CMAP]
    colours = {}
    for region in regions:
        value = values.get(region)
        if value is None or math.isnan(value):
            colours[region] = NO_DATA_COLOUR
        else:
            colours[region] = mcolors.to_hex(cmap(0.15 + 0.85 * float(norm(value))))
    return colours


def region_map_figure(values: Mapping[str, float], title: str, unit: str = "kWh",
                      highlight: str | None = None, path: Path = REGIONS_GEOJSON) -> Figure:
    """Singapore's regions shaded by ``values`` (region -> number in ``unit``), labelled.

    ``highlight`` draws one region's outline heavier (e.g. the region filter's choice).
    """
    outlines = region_outlines(path)
    colours = fill_colours(values, list(outlines))
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.add_axes((0.0, 0.0, 0.86, 0.92))
    for region, outline in outlines.items():
        heavy = region == highlight
        axes.add_patch(PathPatch(outline, facecolor=colours[region], edgecolor="#1d2a33",
                                 linewidth=2.0 if heavy else 0.6, label=region, gid=region))
        value = values.get(region)
        text = "no data" if value is None or math.isnan(value) else f"{value:,.1f} {unit}"
        x, y = _label_point(outline)
        axes.annotate(f"{region}\n{text}", (x, y), ha="center", va="center", fontsize=8,
                      fontweight="bold" if heavy else "normal",
                      bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.7,
                            "lw": 0})
    axes.autoscale_view()
    axes.set_aspect(1 / math.cos(math.radians(1.35)))
    axes.set_axis_off()
    axes.set_title(title)
    known = [v for v in values.values() if not math.isnan(v)]
    if known:
        mappable = ScalarMappable(mcolors.Normalize(min(known), max(known)), colormaps[_CMAP])
        figure.colorbar(mappable, cax=figure.add_axes((0.88, 0.15, 0.025, 0.65)), label=unit)
    return figure
