"""House style, checked with ``ast``: a function takes at most six positional parameters; the rest are keyword-only."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinywave"
MAX_POSITIONAL = 6
# called positionally by a framework, which fixes the signature
FRAMEWORK_SIGNATURES = {
    ("app/ui.py", "generate"): "Gradio passes the page's inputs positionally",
    ("vocoder/hifigan.py", "_load_hook"): "torch's load_state_dict pre-hook signature",
    ("distill/fused.py", "forward"): "torch.autograd.Function.apply passes its inputs positionally",
    ("distill/fused.py", "_block_kl"): "torch.utils.checkpoint passes the block's inputs positionally",
}


def positional_counts(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = [a.arg for a in node.args.posonlyargs + node.args.args]
            if names and names[0] in ("self", "cls"):
                names = names[1:]
            yield node.name, node.lineno, len(names)


def test_functions_take_at_most_six_positional_parameters():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for name, line, count in positional_counts(ast.parse(path.read_text(encoding="utf-8"))):
            if count > MAX_POSITIONAL and (rel, name) not in FRAMEWORK_SIGNATURES:
                offenders.append(f"tinywave/{rel}:{line} {name}() has {count} positional parameters")
    assert not offenders, "make the parameters after the sixth keyword-only (*):\n" + "\n".join(offenders)


def test_the_check_sees_a_long_positional_signature():
    tree = ast.parse("def f(a, b, c, d, e, f, g): pass\ndef k(a, b, c, d, e, f, *, g): pass\nclass C:\n    def m(self, a, b, c, d, e, f): pass")
    assert [(n, c) for n, _, c in positional_counts(tree)] == [("f", 7), ("k", 6), ("m", 6)]
