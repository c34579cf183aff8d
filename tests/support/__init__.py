"""Helpers shared by the test modules (no tests here). Test modules import them from here
(``from support.models import tiny_llama``), never from another ``test_*`` module
(tests/test_test_suite.py checks that).

- ``models``: tiny random models, one factory per kind: ``tiny_tokenizer``, ``tiny_llama``,
  ``tiny_model_dir``, ``tiny_hubert``, ``tiny_whisper_dir``, ``tiny_gpt2_dir``; presets shared
  by several modules;
- ``shards``: token shards (``speech_shards``, ``token_docs``, ``tiny_shards``);
- ``workspace``: a tokenizer folder + shards for `tinywave train`, and its arguments;
- ``audio``: espeak-ng speech, speech-like signals, vocoder utterances;
- ``speech``: speech tokenizers that need no training;
- ``eval``: the evaluation tests' tokenizer, model folder, audio and reference computation;
- ``bench``: tiny benchmark folders in the official layouts;
- ``tracking``: offline Weights & Biases runs and their history;
- ``browser``: headless Chromium over the DevTools protocol;
- ``fixtures``: pytest fixtures used by several modules, registered for every test module in
  tests/conftest.py.
"""
