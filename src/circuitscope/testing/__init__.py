"""Helpers for tests and examples: tiny random models that need no hub."""
