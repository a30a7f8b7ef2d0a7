"""Benchmarks: each module prints a table of figures beside their goals."""
