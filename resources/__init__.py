"""Shipped data of MLRN Studio (weights, model cards, icons), installed as the package ``mlrn_resources``."""
