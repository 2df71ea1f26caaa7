"""Corpus sources, tokenization and packing, and the on-disk activation store."""
