"""Meta's Spirit LM release, read without SpiritLM or fairseq installed.

One module per component of the release layout (docs/SPIRITLM.md section 1):

- :mod:`~tinywave.spiritlm.release`: the checkpoint root (``SPIRITLM_CHECKPOINTS_DIR``),
  its file names, and the ``spiritlm-base`` / ``spiritlm-expressive`` speech tokenizers;
- :mod:`~tinywave.spiritlm.mhubert`: ``mhubert_base_25hz.pt`` as a transformers ``HubertModel``;
- :mod:`~tinywave.spiritlm.quantizer`: ``L11_quantizer_500.pt`` (the linear unit quantizer);
- :mod:`~tinywave.spiritlm.f0_vqvae`: the pitch VQ-VAE (``config.yaml`` + ``model.pt``);
- :mod:`~tinywave.spiritlm.style_encoder`: the wav2vec2 style classifier (an HF folder);
- :mod:`~tinywave.spiritlm.vocoder`: the base and expressive HiFi-GAN vocoders;
- :mod:`~tinywave.spiritlm.lm`: the Llama LM folders and their SentencePiece tokenizer;
- :mod:`~tinywave.spiritlm.conformance`: comparison with SpiritLM's test vectors;
- :mod:`~tinywave.spiritlm.fixtures`: tiny releases with the same structure, for tests.

docs/SPIRITLM.md says how to check conformance with the real files.
"""
