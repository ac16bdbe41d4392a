"""requirements.txt and environment.yml pin the same packages at the same versions."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def conda_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml must have exactly one pip: section"
    return {name.lower(): version for name, version in (spec.split("==") for spec in pip_lists[0])}


def test_every_requirement_is_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert line.count("==") == 1, f"not an exact pin: {line!r}"


def test_requirements_and_environment_agree():
    assert requirement_pins() == conda_pins()


def test_key_pins():
    pins = requirement_pins()
    assert pins["torch"] == "2.13.0"
    major = int(pins["jupyter-book"].split(".")[0])
    assert major == 1, "jupyter-book 2.x downloads its theme at build time; keep 1.x"


def test_conda_python_is_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
