"""The package shows the data flow: sources -> index -> checks -> readers; nothing imports
a later layer, and the package root stays small."""

from __future__ import annotations

import ast

from tests.helpers import ROOT

PACKAGE = ROOT / "exporter"
# Sub-packages in data-flow order: each may import the ones before it, never after.
LAYERS = ["sources", "verify", "checks", "alerting", "web", "commands"]
# The core: what every layer reads. It imports no layer (target.py assembles a target from
# the sources' matcher, timestamp parser and job record and verify's drill record;
# daemon.py and cli.py wire everything).
ASSEMBLERS = {"target", "daemon", "cli", "__main__"}


def imported(path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("exporter.")}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else None


def test_no_module_imports_a_later_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        own = relative.parts[0] if len(relative.parts) > 1 else None
        for module in imported(path):
            other = layer_of(module)
            if other is None:
                continue
            if own is None:
                assert path.stem in ASSEMBLERS, f"core module {relative} imports {module}"
                if path.stem == "target":
                    assert other in ("sources", "verify"), f"{relative} imports {module}"
            else:
                assert LAYERS.index(other) <= LAYERS.index(own), f"{relative} imports {module}"


def test_the_package_root_stays_small() -> None:
    modules = [p for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= 13, sorted(p.name for p in modules)
    assert not list((ROOT / "alerts").rglob("*.py"))  # alerts/ holds rule files only
