"""HiFi-GAN's adversarial objective: least-squares GAN losses, feature matching, the discriminator step.

With D the discriminators' per-patch scores (:mod:`tinywave.vocoder.discriminators`),
x real audio and G(s) the generator's, summed over every sub-discriminator k:

- discriminator:    L_D  = sum_k  E[(D_k(x) - 1)^2] + E[D_k(G(s))^2]
- generator:        L_adv = sum_k E[(D_k(G(s)) - 1)^2]
- feature matching: L_fm  = sum_k sum_l E[|D_k^l(x) - D_k^l(G(s))|]  (l: hidden layers)

and the generator minimizes ``adv_weight`` L_adv + ``fm_weight`` L_fm + its mel/STFT
losses (HiFi-GAN: weights 1, 2 and 45 for the mel L1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinywave.vocoder.discriminators import Discriminators, Judgement


def discriminator_loss(real: Judgement, fake: Judgement) -> torch.Tensor:
    """Least-squares loss pushing real scores to 1 and generated ones to 0."""
    return sum(torch.mean((1.0 - r) ** 2) + torch.mean(f**2) for r, f in zip(real.scores, fake.scores))


def generator_loss(fake: Judgement) -> torch.Tensor:
    """Least-squares loss pushing the scores of generated audio to 1."""
    return sum(torch.mean((1.0 - f) ** 2) for f in fake.scores)


def feature_matching_loss(real: Judgement, fake: Judgement) -> torch.Tensor:
    """Mean absolute difference of every hidden activation, real vs generated, summed over layers."""
    return sum(torch.mean(torch.abs(r - f)) for rs, fs in zip(real.features, fake.features) for r, f in zip(rs, fs))


@dataclass
class Adversary:
    """The discriminators, their optimizer and the generator-side loss weights."""

    disc: Discriminators
    opt: torch.optim.Optimizer
    adv_weight: float = 1.0
    fm_weight: float = 2.0
    grad_clip: float = 0.0  # max gradient norm of the discriminators (0: none, as in HiFi-GAN)
    segment: int = 8192  # samples the discriminators judge per row (HiFi-GAN's segment size; 0: the whole segment)

    def crop(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random ``segment``-sample window of real and generated audio, per row: (B, 1, T) -> (B, 1, segment)."""
        t = real.shape[-1]
        if not self.segment or self.segment >= t:
            return real, fake
        starts = torch.randint(0, t - self.segment + 1, (real.shape[0],)).tolist()
        real, fake = (torch.stack([x[i, :, s : s + self.segment] for i, s in enumerate(starts)]) for x in (real, fake))
        return real, fake

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """One update of the discriminators on real (B, 1, T) and generated (B, 1, T) audio; their losses."""
        real_out, fake_out = self.disc(real), self.disc(fake.detach())
        losses = {f"d/{name}": discriminator_loss(real_out[name], fake_out[name]) for name in real_out}
        total = sum(losses.values())
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), self.grad_clip)
        self.opt.step()
        return {"d/loss": total.item(), **{k: v.item() for k, v in losses.items()}}

    def generator_terms(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """``g/adv`` and ``g/fm`` for generated audio (B, 1, T); gradients reach the generator only."""
        self.disc.requires_grad_(False)
        try:
            with torch.no_grad():
                real_out = self.disc(real)
            fake_out = self.disc(fake)
        finally:
            self.disc.requires_grad_(True)
        adv = sum(generator_loss(fake_out[name]) for name in fake_out)
        fm = sum(feature_matching_loss(real_out[name], fake_out[name]) for name in fake_out)
        return {"g/adv": adv, "g/fm": fm}

    def weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.adv_weight * terms["g/adv"] + self.fm_weight * terms["g/fm"]
