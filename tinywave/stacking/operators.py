"""Depth-growth operators on a list of layers (model-agnostic).

Every operator takes a ``torch.nn.ModuleList`` of L layers and returns a longer one in
which the original layer objects are kept (so their optimizer state still applies) and
the added layers are deep copies with equal weights. The result records

- ``provenance``: for each new layer, the index of the original layer it is (or copies);
  the first occurrence of an index is the original object, later ones are copies;
- ``targets``: the intermediate-distillation map ``{student_layer_index: target}``
  rewritten for the new depth. Keys are 0-based layer indices (layer i's output is
  ``hidden_states[i + 1]``); values are opaque to the operators (the SFM code stores the
  teacher's hidden-state index there, the LM code its teacher layer index).

Operators (``OPERATORS``):

=============  =================================================  ====================
name           new layer order (L = 3, layers a b c)               targets
=============  =================================================  ====================
none           a b c                                               unchanged
top            a b c a' b' c'       (Gong et al. 2019)             re-spaced
gradual n=1    a b c c'             (copies of the top n layers)   re-spaced
middle  n=1    a b b' c             (MIDAS: middle block doubled)  re-spaced
interleaved    a a' b b' c c'  every=1; a b b' c every=2           kept on the block
=============  =================================================  ====================

"Re-spaced" keeps each target at the same relative depth: student index j of depth L
moves to ``round((j + 1) * L_new / L) - 1``, so a target's meaning (which layer object
matches it) changes, as it does in top/gradual/middle stacking. Interleaved stacking
attaches each target to the LAST layer of its original layer's block (the copy that
was inserted right after it), so the block of original layer i keeps matching the same
teacher layer at every stage.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import NamedTuple

from torch import nn


class Growth(NamedTuple):
    """Result of one growth step; unpacks as ``layers, provenance, targets``."""

    layers: nn.ModuleList
    provenance: list[int]
    targets: dict[int, int]

    @property
    def copies(self) -> list[int]:
        """Indices (in the new list) of the layers that are copies, not originals."""
        seen: set[int] = set()
        out = []
        for k, p in enumerate(self.provenance):
            if p in seen:
                out.append(k)
            seen.add(p)
        return out


def _order_none(n_layers: int) -> list[int]:
    return list(range(n_layers))


def _order_top(n_layers: int) -> list[int]:
    return list(range(n_layers)) * 2


def _order_gradual(n_layers: int, n: int = 1) -> list[int]:
    _check_block(n, n_layers, "gradual")
    return list(range(n_layers)) + list(range(n_layers - n, n_layers))


def _order_middle(n_layers: int, n: int = 1) -> list[int]:
    _check_block(n, n_layers, "middle")
    start = (n_layers - n) // 2
    block = list(range(start, start + n))
    return list(range(start + n)) + block + list(range(start + n, n_layers))


def _order_interleaved(n_layers: int, every: int = 1) -> list[int]:
    if every < 1 or every > n_layers:
        raise ValueError(f"interleaved stacking: every={every} must be between 1 and the depth {n_layers}")
    order: list[int] = []
    for i in range(n_layers):
        order += [i, i] if (i + 1) % every == 0 else [i]
    return order


def _check_block(n: int, n_layers: int, op: str) -> None:
    if n < 1 or n > n_layers:
        raise ValueError(f"{op} stacking: n={n} layers to copy must be between 1 and the depth {n_layers}")


# name -> (order function (n_layers, **params) -> provenance, targets stay on the block?)
OPERATORS: dict[str, tuple[Callable[..., list[int]], bool]] = {
    "none": (_order_none, False),
    "top": (_order_top, False),
    "gradual": (_order_gradual, False),
    "middle": (_order_middle, False),
    "interleaved": (_order_interleaved, True),
}


def respace_targets(targets: dict[int, int], old_depth: int, new_depth: int) -> dict[int, int]:
    """Keep each target at the same relative depth: j -> round((j + 1) * new / old) - 1."""
    out: dict[int, int] = {}
    for j, t in sorted(targets.items()):
        k = max(0, int(math.floor((j + 1) * new_depth / old_depth + 0.5)) - 1)
        if k in out:
            raise ValueError(f"targets {targets} collide after growing {old_depth} -> {new_depth} layers; use fewer targets")
        out[k] = t
    return out


def block_targets(targets: dict[int, int], provenance: list[int]) -> dict[int, int]:
    """Move each target to the last new layer that came from its original layer."""
    last = {p: k for k, p in enumerate(provenance)}
    return {last[j]: t for j, t in sorted(targets.items())}


def grow(layers: nn.ModuleList, op: str, targets: dict[int, int] | None = None, **params: int) -> Growth:
    """Grow ``layers`` with operator ``op`` (see ``OPERATORS``); originals are reused, copies deep-copied.

    ``params``: ``n`` for gradual/middle (layers copied), ``every`` for interleaved (b).
    """
    if op not in OPERATORS:
        raise ValueError(f"stacking operator {op!r} is not known; choose one of {sorted(OPERATORS)}")
    order_fn, keep_on_block = OPERATORS[op]
    targets = dict(targets or {})
    bad = [j for j in targets if not 0 <= j < len(layers)]
    if bad:
        raise ValueError(f"target layer indices {bad} are outside the {len(layers)}-layer stack")
    try:
        provenance = order_fn(len(layers), **params)
    except TypeError:
        raise ValueError(f"stacking operator {op!r} does not take parameters {sorted(params)}") from None
    new_layers, seen = [], set()
    for p in provenance:
        new_layers.append(layers[p] if p not in seen else _copy_layer(layers[p]))
        seen.add(p)
    if keep_on_block:
        new_targets = block_targets(targets, provenance)
    else:
        new_targets = respace_targets(targets, len(layers), len(provenance))
    return Growth(nn.ModuleList(new_layers), provenance, new_targets)


def _copy_layer(layer: nn.Module) -> nn.Module:
    twin = copy.deepcopy(layer)
    for p in twin.parameters():
        p.grad = None
    return twin
