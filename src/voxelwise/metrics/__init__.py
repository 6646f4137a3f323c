"""Metrics: plain functions for one case, aggregators for many; every estimate with its n and CI.

Modules: ``classification`` (AUC with DeLong/bootstrap CI, operating points, confusion-matrix
family, per-finding tables), ``agreement`` (Bland-Altman, ICC, correlations), ``survival``
(Harrell's C-index), ``segmentation`` (Dice, IoU, HD95, ASSD, surface Dice, volume errors per
case and class; summaries per split) on ``surface`` (surface distances on the masks' bounding box,
in MONAI's and DeepMind's conventions).
"""
