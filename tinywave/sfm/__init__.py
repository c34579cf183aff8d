"""Speech foundation models: HuBERT-style teacher pretraining, distillation with depth
growth (tinywave.stacking), SUPERB-style probes and an s3prl-compatible upstream.

Modules: ``models`` (load/build HuBERT-family encoders, hidden states), ``student``
(student + heads, save/load), ``losses``, ``distill`` (the training loop with growth),
``pretrain`` (masked unit prediction), ``units`` (targets from a speech tokenizer),
``probes``, ``upstream``, ``data`` (waveforms, deterministic crops), ``optim``
(AdamW schedule, checkpoints), ``synth`` (espeak-ng corpora for tests and benchmarks).
See docs/SFM.md.
"""
