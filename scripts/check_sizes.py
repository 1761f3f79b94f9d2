"""Find modules and functions too long to read at once (ast-based, no imports run).

Usage::

    python scripts/check_sizes.py [--max-function 80] [--max-module 400] [PACKAGE ...]

Prints ``path:function:lines`` for every function (or method) longer than
``--max-function`` lines (decorators to the last line of the body) and
``path:<module>:lines`` for every module longer than ``--max-module`` lines, in
``PACKAGE`` directories or files (default: the project's packages). Exits 1 when anything
is found, so it can gate a check.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGES = (
    "core",
    "feature_store",
    "training",
    "registry",
    "drift",
    "serving",
    "scheduler_hooks",
    "pipelines",
    "benchmarks",
)


def long_functions(path: Path, limit: int) -> Iterator[tuple[str, int]]:
    """``(qualified name, lines)`` of the functions in ``path`` longer than ``limit`` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                lines = (child.end_lineno or child.lineno) - start + 1
                name = f"{prefix}{child.name}"
                if lines > limit:
                    yield name, lines
                yield from visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")

    yield from visit(tree, "")


def main(argv: list[str] | None = None) -> int:
    """Print what is too long; 1 when anything is, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=list(PACKAGES))
    parser.add_argument("--max-function", type=int, default=80)
    parser.add_argument("--max-module", type=int, default=400)
    args = parser.parse_args(argv)
    found = 0
    for package in args.packages:
        root = Path(package)
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > args.max_module:
                print(f"{path}:<module>:{lines}")
                found += 1
            for name, size in long_functions(path, args.max_function):
                print(f"{path}:{name}:{size}")
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
