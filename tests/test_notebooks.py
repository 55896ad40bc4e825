"""The dashboard notebooks: committed clean, and run top to bottom by real kernels."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import nbformat
import pytest
from nbclient import NotebookClient

from metermatrix.demo import load_demo
from metermatrix.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEZONE = "Asia/Singapore"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the demo data ending yesterday."""
    data_dir = tmp_path_factory.mktemp("notebooks") / "data"
    storage = open_storage(data_dir)
    load_demo(storage, datetime.now(ZoneInfo(TIMEZONE)).date() - timedelta(days=1))
    storage.close()
    return data_dir


def run(path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, query: str,
        extra_cell: str) -> nbformat.NotebookNode:
    """Execute the notebook (plus one checking cell) as Voila's kernels would."""
    monkeypatch.setenv("METERMATRIX_DATA_DIR", str(data_dir))
    monkeypatch.setenv("METERMATRIX_TIMEZONE", TIMEZONE)
    monkeypatch.setenv("QUERY_STRING", query)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(extra_cell))
    client = NotebookClient(notebook, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs]


def printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in notebook.cells[-1].outputs
                   if o.get("output_type") == "stream")


def test_there_are_the_two_dashboard_notebooks():
    assert [path.name for path in NOTEBOOKS] == ["consumption.ipynb", "management.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None
    assert notebook.metadata.kernelspec.name == "python3"


def test_management_notebook_runs_with_the_url_parameters(demo_dir, monkeypatch):
    notebook = run(ROOT / "notebooks" / "management.ipynb", demo_dir, monkeypatch,
                   "period=current-week&region=East",
                   "print(dashboard.picker.name.value, dashboard.region.value,"
                   " dashboard.redrawing.redraws, len(dashboard.charts['region-map'].value) > 0,"
                   " 'Tay Xin Yi' in dashboard.tables['silent'].value)")
    assert not [o for o in outputs(notebook) if o.get("output_type") == "error"]
    widget_views = [o for o in outputs(notebook)
                    if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widget_views) == 1
    assert printed(notebook).split() == ["current-week", "East", "1", "True", "True"]


def test_consumption_notebook_runs_for_the_meters_asked_for(demo_dir, monkeypatch):
    notebook = run(ROOT / "notebooks" / "consumption.ipynb", demo_dir, monkeypatch,
                   "meters=999999999,555-555-555&period=yesterday",
                   "print(explorer.frames.meter_ids, explorer.picker.name.value,"
                   " int(explorer.frames.readings['slot'].count()))")
    assert not [o for o in outputs(notebook) if o.get("output_type") == "error"]
    assert printed(notebook).strip() == "(999999999, 555555555) yesterday 96"


def test_consumption_notebook_draws_a_load_profile_for_last_month(demo_dir, monkeypatch):
    notebook = run(ROOT / "notebooks" / "consumption.ipynb", demo_dir, monkeypatch,
                   "meters=999999999,555555555&period=prev-month",
                   "from metermatrix import analysis\n"
                   "frames = explorer.frames\n"
                   "profile = analysis.load_profile(frames.readings)\n"
                   "heat = analysis.heatmap_frame(frames.readings, frames.meter_ids)\n"
                   "print(len(frames.period.days()), len(frames.readings),"
                   " int(profile.notna().sum().sum()), int(heat.isna().sum().sum()))")
    assert not [o for o in outputs(notebook) if o.get("output_type") == "error"]
    days, readings, profile_points, incomplete = map(int, printed(notebook).split())
    assert 28 <= days <= 31
    assert readings == 2 * 48 * days
    assert profile_points == 2 * 48
    assert incomplete == 0
