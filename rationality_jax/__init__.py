"""rationality_jax: is a vision-language model right for the right reasons?

Subpackages (import the one you need; this file imports nothing heavy):
  metrics  - RMA, valid evidence, RR/RW/WR/WW counts, PT, IR, accuracy, ...
  models   - Flax ports of CLIP, ALBEF and BLIP encoders, checkpoint loading
  explain  - jit-compiled explanation heatmaps (Chefer relevance, Grad-CAM, ...)
  data     - TFDS builders with object masks, joint preprocessing, pipeline
"""

__version__ = "0.1.0"
