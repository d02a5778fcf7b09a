"""Flax ports of the CLIP, ALBEF and BLIP encoders (see docs/models.md)."""
