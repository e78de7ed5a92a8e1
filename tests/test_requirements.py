"""The lock file PaaS buildpacks install from (requirements.txt) pins every dependency
pyproject.toml declares, at a version that satisfies it. Regenerate it with the command
in its header (docs/hosting/paas.md) whenever the dependencies change."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    found = {}
    for line in lines:
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def test_every_declared_dependency_is_pinned_at_a_version_it_allows():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    locked = pins()
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.txt: re-run pip-compile"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.txt pins {name}=={locked[name]}, pyproject.toml wants {text}"
        )


def test_every_line_is_a_pin_or_a_comment():
    # Buildpacks install each line as it stands: no ranges, no editable checkout.
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        stripped = line.strip()
        assert not stripped or stripped.startswith("#") or PIN.match(stripped), line
