"""An example third-party plugin package for harness (used by the test suite and the docs)."""
