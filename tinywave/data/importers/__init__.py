"""Importers: other corpus layouts -> the project's manifest (docs/FORMATS.md).

One small module per source (``librispeech``, ``fairseq``, ``hf_dataset``) and per word
alignment format (``textgrid``, ``ctm``); ``formats`` maps the names used on the command
line to them, and ``job`` runs an import (``tinywave manifest import``,
tinywave/recipes/manifest_import.py).
"""
