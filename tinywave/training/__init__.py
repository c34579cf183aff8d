"""The generic training machinery every LM recipe runs on: the loop (``trainer.fit``), its settings,
resumable batches over shards, checkpoints (whole and sharded), the run log, and DDP/FSDP helpers.

Nothing here knows about distillation; ``tinywave.distill`` holds the objective, the losses and
the teacher (online or cached) that it plugs into the loop.
"""
