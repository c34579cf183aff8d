"""The embedded spoken corpus and benchmark builders (espeak-ng).

- ``stories``: seeded five-sentence stories with coherent and wrong endings;
- ``split``: the held-out pool the benchmarks use, and the training stories kept apart from it;
- ``espeak`` / ``timing``: espeak-ng through ctypes, 16 kHz audio with word and phone timings;
- ``synth``: parallel, resumable, deterministic rendering of audio jobs;
- ``training``: the training corpus manifest; ``storycloze``, ``salmon``, ``slm21`` (with
  ``lexicon``), ``probes``: the benchmark folders; ``voices``, ``noise``, ``room``: their ingredients.
"""
