"""The layers are layers: `core/` imports no project package, `tasks/` and `policies/` import neither `harness/`
nor `experiments/` (found by parsing every import, lazy ones inside functions included)."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {"core": {"tasks", "policies", "harness", "experiments"}, "tasks": {"policies", "harness", "experiments"},
             "policies": {"harness", "experiments"}}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer):
    bad = {str(p.relative_to(REPO)): sorted(imported_packages(p) & FORBIDDEN[layer])
           for p in (REPO / layer).rglob("*.py")}
    assert {k: v for k, v in bad.items() if v} == {}
