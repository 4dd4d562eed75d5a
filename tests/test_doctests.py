"""The ``Example:`` blocks of the package's docstrings run as doctests.

Why: an example that no longer runs misleads every reader who copies it. Examples that
need files or services the test machine lacks say ``# doctest: +SKIP`` on those lines;
everything else runs here, in each module's own namespace.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
OPTIONAL = {"duchenne.train": "torch", "duchenne.server": "fastapi", "duchenne.batch.ray": "ray"}


def _module_names() -> list[str]:
    names = []
    for path in sorted((SRC / "duchenne").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples_run(name: str) -> None:
    for prefix, needs in OPTIONAL.items():
        if name.startswith(prefix) and importlib.util.find_spec(needs) is None:
            pytest.skip(f"{name} needs {needs}")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=vars(module).copy()):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
