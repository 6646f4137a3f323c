"""Worklist triage: score waiting studies, move routine studies with a likely haemorrhage to stat,
and simulate what that does to the time to diagnosis.

- `worklist`: the reading worklist in the repository (add, list in queue order, mark read) and
  `apply_scores`, which records scores and applies the policy with a reason for every change;
- `policy`: the rule (a routine study whose score reaches the threshold becomes stat) and the
  detector's operating points (``RUN/operating_points.json``);
- `score`: scores from a detector run folder (``predict_studies``) or from a CSV;
- `simulate`: a discrete-event simulation of the queue with and without the model;
- `outputs`: its files (summary JSON, per-study CSV, time-to-diagnosis figure).
"""
