"""Tasks: one package per kind of task (segmentation, classification...): loss, metrics,
head, post-processing and evaluation."""
