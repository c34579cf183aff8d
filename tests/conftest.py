import os
import random
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"

# Fixtures shared by several test modules (one_thread, shards, cache_shards, unit_corpus): defined in
# tests/support/fixtures.py, visible to every test module. Other shared helpers: `from support.<module> import ...`.
pytest_plugins = ["support.fixtures"]

# Hypothesis: under CI every run draws the same examples (a failure seen once is seen on every
# run); elsewhere each run draws a fresh seed, printed at the end so `--hypothesis-seed` repeats it.
# Both are spelled out rather than left to Hypothesis' own CI detection, which depends on its version.
settings.register_profile("derandomize", settings.get_profile("default"), derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("seeded", settings.get_profile("default"), print_blob=True)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' plugin reads --hypothesis-seed
def pytest_configure(config):
    settings.load_profile("derandomize" if in_ci() else "seeded")
    if not in_ci() and config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = str(random.SystemRandom().randrange(2**32))


def pytest_terminal_summary(terminalreporter, config):
    line = f"hypothesis: profile {settings.get_current_profile_name()!r} (derandomize={settings.default.derandomize})"
    if settings.default.derandomize:
        terminalreporter.write_line(line + ": the same examples on every run")
    else:
        seed = config.getoption("hypothesis_seed", None)
        terminalreporter.write_line(line + f", seed {seed}; repeat these examples with --hypothesis-seed={seed}")


# the worst outcome of a test over its setup, call and teardown: "passed", "skipped" or "failed"
OUTCOME = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Record each test's outcome on the item, for summaries computed from what ran."""
    report = (yield).get_result()
    if report.failed:
        item.stash[OUTCOME] = "failed"
    elif report.skipped and item.stash.get(OUTCOME, "passed") == "passed":
        item.stash[OUTCOME] = "skipped"
    elif report.when == "call":
        item.stash.setdefault(OUTCOME, "passed")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run fastest on one thread; several threads thrash on a 2-core box."""
    import torch

    torch.set_num_threads(1)
    yield
