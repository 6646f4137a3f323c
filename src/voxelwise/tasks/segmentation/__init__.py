"""Segmentation: training data, post-processing and evaluation of label maps."""
