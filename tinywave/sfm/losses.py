"""Distillation losses for speech encoders, averaged over the real (unpadded) frames.

- DistilHuBERT (Chang et al. 2022): per predicted teacher layer,
  ``L1(pred, target) - log sigmoid(cos(pred, target))``, summed over the layers.
- Layer-to-layer (interleaved-stacking paper): ``MSE(output) + w * mean_j MSE(intermediate j)``
  where "output" is the pair of the student's last layer and the teacher's matched layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T) values over the True entries of the (B, T) mask."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def distilhubert_loss(preds: dict[int, torch.Tensor], targets: dict[int, torch.Tensor],
                      mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over teacher layers of L1 + (-log sigmoid(cos)); preds/targets (B, T, D), mask (B, T).

    Returns (loss, parts) with ``l1/<layer>`` and ``cos/<layer>`` (the mean cosine) per layer.
    """
    total = preds[next(iter(preds))].new_zeros(())
    parts: dict[str, float] = {}
    for layer, pred in preds.items():
        target = targets[layer]
        l1 = _masked_mean((pred - target).abs().mean(-1), mask)  # (B, T) -> ()
        cos = F.cosine_similarity(pred, target, dim=-1)  # (B, T)
        total = total + l1 + _masked_mean(-F.logsigmoid(cos), mask)
        parts[f"l1/{layer}"] = l1.item()
        parts[f"cos/{layer}"] = _masked_mean(cos.detach(), mask).item()
    return total, parts


# intermediate_weight 0.5: the interleaved-stacking paper's best w (docs/SFM.md, "Benchmark: the stacking study")
def layer_to_layer_loss(preds: dict[int, torch.Tensor], targets: dict[int, torch.Tensor], output_layer: int,
                        mask: torch.Tensor, intermediate_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE at the output pair + ``intermediate_weight`` x mean MSE over the other pairs.

    ``preds[t]``: the student's projection of the layer matched to teacher layer t (B, T, D);
    ``output_layer``: the teacher layer matched by the student's last layer.
    """
    mse = {t: _masked_mean((p - targets[t]).pow(2).mean(-1), mask) for t, p in preds.items()}
    inter = [v for t, v in mse.items() if t != output_layer]
    inter_loss = torch.stack(inter).mean() if inter else mse[output_layer].new_zeros(())
    total = mse[output_layer] + intermediate_weight * inter_loss
    parts = {f"mse/{t}": v.item() for t, v in mse.items()}
    parts["mse/output"], parts["mse/intermediate"] = mse[output_layer].item(), inter_loss.item()
    return total, parts
