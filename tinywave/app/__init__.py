"""The local listening app: a teacher and a student generating side by side in the browser.

``compare`` runs several :class:`tinywave.generate.speechlm.SpeechLM` streams on one
prompt, taking turns, with per-model timing (no web code); ``ui`` lays it out with Gradio
(the optional ``app`` extra). The ``tinywave app`` recipe loads the models and starts it.
"""
