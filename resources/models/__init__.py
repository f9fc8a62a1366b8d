"""Shipped weights (mlrn-x{2,3,4}.pt) and their model cards."""
