"""The heatmaps: one module per explanation method, its options and its arithmetic.

Token heatmaps (`chefer`, `rollout`, `gradcam`) read what the image tower sows
at some of its sites (`base`); pixel heatmaps (`input_gradients`,
`gradient_x_input`, `integrated_gradients`) differentiate the images.
"""
