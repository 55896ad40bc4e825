"""The project's set-up files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from metermatrix.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        assert version, f"{requirement} is not pinned with =="
        pins[name.lower()] = version
    return pins


def test_environment_yml_has_the_same_pins_as_pyproject() -> None:
    text = (ROOT / "environment.yml").read_text()
    conda_pins = {name.lower(): version
                  for name, version in re.findall(r"^\s*-\s*([\w.\-\[\]]+)==(\S+)", text, re.M)}
    assert "name: metermatrix" in text
    assert conda_pins == _pyproject_pins()


def test_server_help_lists_every_setting() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--help"],
                            capture_output=True, text=True, check=True)
    for name, _, _ in SETTINGS:
        assert "--" + name.replace("_", "-") in result.stdout


def test_readme_shows_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
