"""evaluation/

Benchmark scoring. `metrics.py` is the public scorer API; one module per family of scorers
(`vqa.py`, `anls.py`, `pope.py`). The runner and the lmms-eval / VLMEvalKit plugins are still to come.
"""
