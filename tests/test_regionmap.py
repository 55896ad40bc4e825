"""The choropleth of Singapore's regions from the bundled GeoJSON."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.colors as mcolors
import pytest
from matplotlib.patches import PathPatch

from metermatrix.fleet import REGIONS
from metermatrix.regioncharts import figure_png
from metermatrix.regionmap import (
    NO_DATA_COLOUR,
    REGIONS_GEOJSON,
    RegionMapError,
    fill_colours,
    region_map_figure,
    region_outlines,
)

#: A well-known place in each region (longitude, latitude).
LANDMARKS = {
    "Central": (103.8318, 1.3048),  # Orchard Road
    "East": (103.9915, 1.3644),  # Changi Airport
    "North": (103.7865, 1.4370),  # Woodlands
    "North-East": (103.9020, 1.4043),  # Punggol
    "West": (103.7063, 1.3400),  # Jurong West
}
VALUES = {"Central": 10.0, "East": 20.0, "North": 30.0, "North-East": 40.0, "West": 50.0}


def patches(figure) -> dict[str, PathPatch]:
    return {patch.get_gid(): patch for patch in figure.axes[0].patches}


def test_the_bundled_file_has_the_five_regions_with_their_land():
    outlines = region_outlines(REGIONS_GEOJSON)
    assert sorted(outlines) == sorted(REGIONS)
    for region, point in LANDMARKS.items():
        inside = [name for name, outline in outlines.items() if outline.contains_point(point)]
        assert inside == [region]


def test_the_bundled_file_keeps_its_attribution():
    readme = (REGIONS_GEOJSON.parent / "README.md").read_text()
    assert "Master Plan 2019 Region Boundary (No Sea)" in readme
    assert "Singapore Open Data Licence version 1.0" in readme


def test_more_consumption_is_drawn_darker():
    figure = region_map_figure(VALUES, "Energy")
    drawn = patches(figure)
    lightness = {region: sum(mcolors.to_rgb(patch.get_facecolor())) for region, patch in
                 drawn.items()}
    ordered = sorted(lightness, key=lightness.get, reverse=True)
    assert ordered == ["Central", "East", "North", "North-East", "West"]


def test_a_region_without_a_value_is_grey_and_says_so():
    figure = region_map_figure({"Central": 5.0, "East": math.nan}, "Energy")
    drawn = patches(figure)
    assert mcolors.to_hex(drawn["East"].get_facecolor()) == NO_DATA_COLOUR
    assert mcolors.to_hex(drawn["North"].get_facecolor()) == NO_DATA_COLOUR
    labels = [text.get_text() for text in figure.axes[0].texts]
    assert "East\nno data" in labels
    assert "Central\n5.0 kWh" in labels


def test_the_chosen_region_is_outlined_heavier():
    drawn = patches(region_map_figure(VALUES, "Energy", highlight="North"))
    assert drawn["North"].get_linewidth() > drawn["East"].get_linewidth()


def test_equal_values_do_not_divide_by_zero():
    colours = fill_colours({region: 7.0 for region in REGIONS}, list(REGIONS))
    assert len(set(colours.values())) == 1
    assert NO_DATA_COLOUR not in colours.values()


def test_the_map_renders_as_png():
    assert figure_png(region_map_figure(VALUES, "Energy")).startswith(b"\x89PNG")


def test_a_file_that_is_not_a_feature_collection_is_refused(tmp_path: Path):
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "Feature"}')
    with pytest.raises(RegionMapError):
        region_outlines(broken)
