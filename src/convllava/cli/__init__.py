"""cli/

The `convllava` command line: `main.py` builds the parser, each sub-command lives in its own module.
"""
