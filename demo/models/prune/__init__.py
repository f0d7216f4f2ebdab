"""Depth pruning of a draft model: angular-distance block choice (Gromov et al. 2024), cut, heal, export."""
