"""The house rules, as data: which package is which app, and the order they may depend in.

Apps depend downward only, in imports, foreign keys and migrations. A lower app that must let a
higher one contribute declares an extension point (``instrumentshare.core.extensions``); the higher
app registers, the lower one never imports it. Read by ``tests/architecture/test_layers.py``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Longest prefix wins: ``instrumentshare.core.errors`` is core, ``instrumentshare.urls`` the project.
APPS: dict[str, str] = {
    "instrumentshare.core": "core",
    "instrumentshare.audit": "audit",
    "instrumentshare.accounts": "accounts",
    "catalog": "catalog",
    "bookings": "bookings",
    "submissions": "submissions",
    "usage": "usage",
    "billing": "billing",
    "oversight": "oversight",
    "portal": "portal",
    "instrumentshare": "project",   # settings, urls, the API root, the Celery app
    "devtools": "devtools",         # the city generator and benchmark commands; not part of the product
}

# The order, lowest first. Apps on one rank (bookings and submissions) know nothing of each other.
# Audit sits below accounts: every app, accounts too, records audit events; audit itself only names
# "the user model" through Django's AUTH_USER_MODEL setting, which any app may.
RANKS: dict[str, int] = {
    "core": 0, "audit": 1, "accounts": 2, "catalog": 3, "bookings": 4, "submissions": 4, "usage": 5,
    "billing": 6, "oversight": 7, "portal": 8, "project": 9, "devtools": 10,
}

# Django app labels of our apps, for models and migrations.
LABELS: dict[str, str] = {
    "core": "core", "audit": "audit", "accounts": "accounts", "catalog": "catalog", "bookings": "bookings",
    "submissions": "submissions", "usage": "usage", "billing": "billing", "oversight": "oversight",
    "portal": "portal", "devtools": "devtools",
}


def app_of(module: str) -> str | None:
    best = None
    for prefix in APPS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return APPS[best] if best else None


def may_depend(lower_or_not: str, on: str) -> bool:
    """Whether code of app ``lower_or_not`` may use app ``on``."""
    return lower_or_not == on or RANKS[on] < RANKS[lower_or_not]


@dataclass(frozen=True)
class Edge:
    source: str   # the file, relative to the project
    line: int
    importer: str
    imported: str
    module: str   # what was imported

    def __str__(self) -> str:
        return f"{self.source}:{self.line} {self.importer} -> {self.imported} ({self.module})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, source: str, *, is_package: bool = False):
    """(line, imported module) for every import in the source, function-local ones included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:   # ``from catalog import services``: a submodule, same app anyway
                yield node.lineno, f"{target}.{alias.name}"


def upward_imports(files: dict[str, str]) -> list[Edge]:
    """Every import in ``files`` (module path relative to the project -> source) that points up or sideways."""
    found = []
    for relative, source in sorted(files.items()):
        path = ROOT / relative
        module = module_name(path)
        importer = app_of(module)
        if importer is None:
            continue
        seen = set()
        for line, target in imports_of(module, source, is_package=path.name == "__init__.py"):
            imported = app_of(target)
            if imported is None or may_depend(importer, imported) or (line, imported) in seen:
                continue
            seen.add((line, imported))
            found.append(Edge(relative, line, importer, imported, target))
    return found


def product_files() -> dict[str, str]:
    """Our own Python files, migrations included, tests and virtual environments not."""
    files = {}
    for top in sorted({prefix.split(".")[0] for prefix in APPS}):
        directory = ROOT / top
        if not directory.is_dir():
            continue
        for path in directory.rglob("*.py"):
            files[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return files
