"""Plugins that let other evaluation toolkits drive our models: lmms-eval (`lmms_eval.py`, registered through
the `lmms_eval.models` entry point) and VLMEvalKit (`vlmevalkit.py`). Each imports its toolkit only when used."""
