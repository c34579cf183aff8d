"""One module per ``tinywave`` subcommand: its ``Config`` (sections of typed, documented keys) and ``run(cfg)``.

The CLI imports every recipe module to parse arguments and print help, so a recipe module
imports only light modules at its top (configs, settings, defaults); the heavy machinery
(torch, transformers and the packages built on them) is imported inside ``run`` and its
helpers. ``tinywave --help`` therefore starts without loading torch
(``tests/test_import_graph.py`` checks it).
"""
