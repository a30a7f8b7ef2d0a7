"""Shared corpus fixture: the generator lives in scripts/make_scan_corpus.py."""
