"""Metrics and evaluation reports; numpy only, so that serving installs can evaluate too."""
