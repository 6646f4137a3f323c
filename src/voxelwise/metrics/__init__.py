"""Metrics: plain functions for one case, aggregators for many; every estimate with its n and CI.

Modules: ``classification`` (AUC with DeLong/bootstrap CI, operating points, confusion-matrix
family, per-finding tables), ``agreement`` (Bland-Altman, ICC, correlations), ``survival``
(Harrell's C-index), ``segmentation`` (overlap and surface metrics).
"""
