"""Registries owned by a lower package and filled by a higher one, without an import cycle.

``tinywave.speech`` owns the feature, quantizer and release-tokenizer registries
(``speech/tokenizer.py``: ``FEATURES``, ``QUANTIZERS``, ``RELEASES``) and ``tinywave.vocoder``
owns the backend registry (``vocoder/backends.py``: ``BACKENDS``, ``MARKERS``). Support for
Meta's SpiritLM release lives above both, in ``tinywave.spiritlm``, and registers its entries
from ``tinywave/spiritlm/plugin.py``. The lower packages never import it: before they look a
kind up they call :func:`load_plugins`, which imports the modules named in ``PLUGINS`` once,
so a stored tokenizer or vocoder of a SpiritLM kind loads without the caller importing anything.
"""

from __future__ import annotations

import importlib

PLUGINS = ("tinywave.spiritlm.plugin",)  # modules that register into the lower packages' registries
_loaded = False


def load_plugins() -> None:
    """Import every module of ``PLUGINS`` (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # before importing: a plugin imports the registries that call this
    for name in PLUGINS:
        importlib.import_module(name)
