"""TFDS builders of images with object masks; see `rationality_jax.data.BUILDERS`."""
