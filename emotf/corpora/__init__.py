"""Corpora: what a dataset is made of (clip names, labels, speakers, folds, rater votes)."""
