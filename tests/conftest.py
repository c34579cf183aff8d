import os
from pathlib import Path

import pytest

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = Path(__file__).parent / "fixtures"


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


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run fastest on one thread; several threads thrash on a 2-core box."""
    import torch

    torch.set_num_threads(1)
    yield
