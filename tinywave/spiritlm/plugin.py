"""SpiritLM's kinds registered into the registries of ``tinywave.speech`` and ``tinywave.vocoder``
(``tinywave/plugins.py`` imports this module before those registries are looked up).

- speech features: ``spiritlm_mhubert``, ``spiritlm_f0_vqvae``, ``spiritlm_w2v2_style``;
- quantizer: ``classifier`` (the style classifier's head);
- release tokenizers: ``spiritlm-base:ROOT`` and ``spiritlm-expressive:ROOT``;
- vocoder backend ``spiritlm`` (a release's ``generator.pt`` folder).
"""

from __future__ import annotations

from tinywave.speech.tokenizer import FEATURES, QUANTIZERS, RELEASES
from tinywave.spiritlm.release import load_classifier, load_features, speech_tokenizer
from tinywave.spiritlm.vocoder import load_spiritlm_vocoder
from tinywave.vocoder.backends import BACKENDS, MARKERS

for _kind in ("spiritlm_mhubert", "spiritlm_f0_vqvae", "spiritlm_w2v2_style"):
    FEATURES[_kind] = load_features
QUANTIZERS["classifier"] = load_classifier
for _release in ("spiritlm-base", "spiritlm-expressive"):
    RELEASES[_release] = speech_tokenizer
BACKENDS["spiritlm"] = load_spiritlm_vocoder
MARKERS["generator.pt"] = "spiritlm"
