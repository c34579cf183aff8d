"""Imports sit at the top of a module; one inside a function says why (issue 18, item 3).

A function-level import is allowed only with a ``# lazy:`` comment, on its line or the
line directly above (a comment above a block of consecutive import lines covers the block),
giving the reason: an optional extra (pocketsphinx, gradio, datasets,
torchfcpe...), a heavy package a module must import without (torch, transformers, peft,
scikit-learn, matplotlib...), or a real import cycle. Every ``tinywave/**/*.py`` is read
with ``ast`` (methods and nested functions included), so an import nobody justified
fails here naming its file and line.
"""

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tinywave"
LAZY = re.compile(r"#\s*lazy:\s*\S")  # "# lazy: <reason>"

# Files not yet cleaned up: {path relative to the repository: uncommented function-level imports}.
# Empty: every file is clean. The allow-list only shrinks, so keep it empty: a new function-level
# import gets its `# lazy:` reason or moves to the top (test_pending_counts_are_current checks the entries).
PENDING: dict[str, int] = {}


def _function_level_spans(source: str) -> dict[int, int]:
    """{first line: last line} of every import statement inside a function body (methods and nested functions too)."""
    found = {}
    for func in ast.walk(ast.parse(source)):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.update({n.lineno: n.end_lineno for n in ast.walk(func) if isinstance(n, (ast.Import, ast.ImportFrom))})
    return found


def function_level_imports(source: str) -> list[int]:
    """Line numbers of the import statements inside function bodies (methods and nested functions too)."""
    return sorted(_function_level_spans(source))


def lazy_comment_lines(source: str) -> set[int]:
    """Lines carrying a ``# lazy: <reason>`` comment (real comments only, not text in strings)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0] for t in tokens if t.type == tokenize.COMMENT and LAZY.search(t.string)}


def unexplained_imports(source: str) -> list[int]:
    """Function-level imports with no ``# lazy:`` comment on their line, on the line directly above, or above
    the block of consecutive import lines they belong to."""
    lazy = lazy_comment_lines(source)
    spans = _function_level_spans(source)
    ends = {end: start for start, end in spans.items()}  # last line -> first line of each import
    explained: set[int] = set()
    for start in sorted(spans):
        previous = ends.get(start - 1)  # an import ending on the line just above continues a block
        if start in lazy or start - 1 in lazy or (previous is not None and previous in explained):
            explained.add(start)
    return [line for line in sorted(spans) if line not in explained]


def unexplained_by_file() -> dict[str, list[int]]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        lines = unexplained_imports(path.read_text(encoding="utf-8"))
        if lines:
            out[path.relative_to(ROOT.parent).as_posix()] = lines
    return out


def test_every_function_level_import_says_why_it_is_lazy():
    found = unexplained_by_file()
    assert len(list(ROOT.rglob("*.py"))) > 100, "the walk found too few modules: the package is not being read"
    problems = []
    for rel, lines in found.items():
        allowed = PENDING.get(rel, 0)
        if len(lines) > allowed:
            where = ", ".join(f"{rel}:{line}" for line in lines)
            problems.append(f"{rel}: {len(lines)} function-level import(s) without a `# lazy: <reason>` comment"
                            + (f" (PENDING allows {allowed})" if allowed else "") + f": {where}")
    assert not problems, ("move these imports to the top of their module, or say why they stay inside the function "
                          "with a `# lazy: <reason>` comment on the line or the line above:\n  " + "\n  ".join(problems))


def test_pending_counts_are_current():
    """The allow-list only shrinks: an entry above its file's real count must be lowered (or removed at 0)."""
    found = unexplained_by_file()
    missing = [rel for rel in PENDING if not (ROOT.parent / rel).is_file()]
    assert not missing, f"PENDING names files that do not exist: {missing}"
    stale = {rel: len(found.get(rel, [])) for rel, count in PENDING.items() if len(found.get(rel, [])) < count}
    assert not stale, f"PENDING is higher than needed; lower these counts (remove entries at 0): {stale}"


def test_the_check_sees_methods_nested_functions_and_comments():
    source = (
        "import os\n"                                             # 1 module level: fine
        "def f():\n"
        "    import json\n"                                       # 3 unexplained
        "    # lazy: optional extra\n"
        "    import gradio\n"                                     # 5 explained by the line above
        "    import torch  # lazy: keeps this module light\n"     # 6 explained on its line
        "    s = '# lazy: not a comment'\n"
        "    import yaml\n"                                       # 8 a string is no reason
        "class C:\n"
        "    def m(self):\n"
        "        def inner():\n"
        "            from x import y\n"                           # 12 nested function in a method
        "        # lazy:\n"
        "        import z\n"                                      # 14 a comment without a reason
        "if True:\n"
        "    import sys\n"                                        # 16 module level: fine
        "def g():\n"
        "    # lazy: heavy\n"
        "    import a\n"                                         # 19 explained by the comment
        "    from b import (c,\n"
        "                   d)\n"                                # 20 the block goes on
        "    import e\n"                                         # 22 still the block
        "\n"
        "    import f\n"                                         # 24 a blank line ends the block
    )
    assert function_level_imports(source) == [3, 5, 6, 8, 12, 14, 19, 20, 22, 24]
    assert unexplained_imports(source) == [3, 8, 12, 14, 24]
