"""Evaluation: metrics, figures, reports, human raters, groups, intervals, calibration,
comparisons."""
