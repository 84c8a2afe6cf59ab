"""environment.yml (conda) must list the same packages as pyproject.toml (pip)."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {_name(r) for r in extra}
    return names


def _conda_packages() -> set[str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r) for r in pip if not r.startswith("-e")}


def test_environment_lists_the_same_packages_as_pyproject():
    pip_side, conda_side = _pyproject_packages(), _conda_packages()
    assert pip_side - conda_side == set(), f"in pyproject.toml only: {sorted(pip_side - conda_side)}"
    assert conda_side - pip_side == set(), f"in environment.yml only: {sorted(conda_side - pip_side)}"


def test_torch_is_pinned_to_the_cpu_build_in_both():
    constraints = (ROOT / "constraints.txt").read_text()
    assert "torch==2.13.0" in constraints
    environment = (ROOT / "environment.yml").read_text()
    assert "torch==2.13.0" in environment
