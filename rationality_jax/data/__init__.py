"""Datasets with object masks (filled in below)."""
