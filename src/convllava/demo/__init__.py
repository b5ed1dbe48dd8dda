"""The `convllava demo`: synthetic data, the three training stages, evaluation and a chat answer on a CPU."""
