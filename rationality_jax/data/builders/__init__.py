"""TFDS builders of images with object masks, one dataset per module;
registered in `rationality_jax.data.DATASETS` (`rationality_jax.data.datasets`)."""
