"""The benchmark: python -m demo.bench (see __main__.py)."""
