"""Progressive depth growth (stacking): operators, schedules, model and optimizer helpers.

See ``operators.py`` for the operators' layer orders and target rules, ``schedule.py``
for the Equal / Prop-1 stage schedules and ``apply.py`` for growing a Hugging Face model
(HuBERT, Llama) in place and carrying its optimizer state.
"""

from tinywave.stacking.apply import (
    OPTIMIZER_MODES,
    apply_growth,
    carry_optimizer_state,
    layer_list,
    parameter_sources,
    renumber_layers,
    renumber_llama_layers,
)
from tinywave.stacking.operators import OPERATORS, Growth, block_targets, grow, respace_targets
from tinywave.stacking.schedule import SCHEDULES, final_depth, growth_steps, plan_growth, stage_at, stage_lengths

__all__ = [
    "OPERATORS", "OPTIMIZER_MODES", "SCHEDULES", "Growth", "apply_growth", "block_targets", "carry_optimizer_state",
    "final_depth", "grow", "growth_steps", "layer_list", "parameter_sources", "plan_growth", "renumber_layers",
    "renumber_llama_layers", "respace_targets", "stage_at", "stage_lengths",
]
