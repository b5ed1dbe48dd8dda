"""Data recipes: the paper's training mixtures declared in three YAML layers (sources -> datasets -> recipe
stages), prepared with one command (`prepare`), verified (`check`), planned (`plan`) and exported."""

from .schema import Recipe, load_recipe, parse_stage_spec

__all__ = ["Recipe", "load_recipe", "parse_stage_spec"]
