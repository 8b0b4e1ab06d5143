"""The architecture holds: the layer contract of docs/architecture.md (no module of medlake
imports a layer above its own; every module belongs to a layer; imports inside functions count,
the `if __name__ == "__main__":` block of a job script, run only by spark-submit, does not), and
the documentation and the code name only files that exist."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import medlake
from tests import REPO

PACKAGE = Path(medlake.__file__).parent


def contract() -> list[list[str]]:
    """The layers of docs/architecture.md, top first."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```layers block"
    return [[p.strip() for p in line.split("|")] for line in block[1].splitlines() if line]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, str]:
    return {module_name(p): p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}


def _is_main_guard(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def imported(module: str, source: str, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, medlake module) for every import in `source`, at any depth."""
    tree = ast.parse(source)
    guarded = {id(n) for top in tree.body if _is_main_guard(top) for n in ast.walk(top)}
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module}:{node.lineno}: relative import (write it absolute)"
            base = node.module or ""
            # `from medlake import jobserver` names a module; `from medlake.x import f` a name
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for name in names:
            if name == "medlake" or name.startswith("medlake."):
                yield node.lineno, name


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, members in enumerate(layers):
        for prefix in members:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), index)
    return None if best is None else best[1]


def violations(modules: Mapping[str, str], layers: list[list[str]]) -> list[str]:
    known = set(modules)
    problems = []
    for module, source in sorted(modules.items()):
        if module == "medlake":
            continue
        own = layer_of(module, layers)
        if own is None:
            problems.append(f"{module}: in no layer of docs/architecture.md")
            continue
        for line, target in imported(module, source, known):
            theirs = layer_of(target, layers)
            if target != "medlake" and theirs is not None and theirs < own:
                problems.append(
                    f"{module}:{line} imports {target}, a layer above "
                    f"({' | '.join(layers[theirs])} over {' | '.join(layers[own])})"
                )
    return problems


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert violations(sources(), contract()) == []


def test_every_layer_of_the_contract_exists() -> None:
    modules = set(sources())
    missing = [
        p
        for layer in contract()
        for p in layer
        if not any(m == p or m.startswith(p + ".") for m in modules)
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("medlake.io.planted", "from medlake.jobs import ingest"),  # io -> jobs
        ("medlake.governance.planted", "def f():\n    from medlake.runtime import JobContext"),
        ("medlake.silver.planted", "import medlake.gold.metrics"),
    ],
)
def test_an_upward_import_is_caught_even_inside_a_function(module: str, line: str) -> None:
    planted = {**sources(), module: line + "\n"}
    found = violations(planted, contract())
    assert len(found) == 1 and found[0].startswith(f"{module}:"), found


def test_the_main_block_of_a_job_script_is_not_a_dependency() -> None:
    script = 'if __name__ == "__main__":\n    from medlake.cli import submit\n'
    assert violations({**sources(), "medlake.jobs.planted": script}, contract()) == []


def test_documentation_and_code_name_only_files_that_exist() -> None:
    """Every `folder/file.ext` path written in the README, docs/, the code, the tests and the
    configuration exists in the repository (relative to it, to the package, to its packaged
    configuration or to the file itself), except generated files under var/ and paths with a
    placeholder (`<plant>`, `NAME`, `*`)."""
    pattern = re.compile(
        r"(?<![\w./<>{}$+-])((?:[\w.-]+/)+[\w.-]+\.(?:md|py|yaml|yml|toml|sh|lock))(?![\w/])"
    )
    roots = [REPO, PACKAGE, PACKAGE / "conf"]
    files = [REPO / "README.md", *REPO.glob("docs/*.md"), *PACKAGE.rglob("*.py")]
    files += [*PACKAGE.rglob("*.yaml"), *(REPO / "simulator").rglob("*.py")]
    files += [*(REPO / "tests").rglob("*.py"), *(REPO / "bench").glob("*.py")]
    missing = set()
    for file in files:
        for match in pattern.finditer(file.read_text(encoding="utf-8")):
            path = match.group(1)
            if path.startswith("var/") or "NAME" in path or re.search(r"[<>*{}$]", path):
                continue
            if not any((root / path).exists() for root in [*roots, file.parent]):
                missing.add(f"{file.relative_to(REPO)}: {path}")
    assert sorted(missing) == []
