"""Interleaved text/speech generation: prompts, modality forcing, batched and streamed decoding.

``speechlm.SpeechLM`` is the entry point; ``forcing`` holds the ``transformers`` logits
processor and stopping criterion, ``decode`` our KV-cached decoding loop, ``audio`` output
parsing and chunked vocoding, ``outputs`` the files a run writes, ``samples`` listening
samples of several models for reports, ``deploy`` CPU dtypes and int8, ``bench`` latency figures.
"""
