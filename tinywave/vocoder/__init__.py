"""Unit-to-waveform vocoders: SpiritLM's unit HiFi-GAN (``hifigan``), a Griffin-Lim baseline,
the backend interface (``backends.load_vocoder``), training pieces and spectral metrics."""
