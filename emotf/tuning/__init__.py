"""Hyper-parameter search with keras-tuner: the search, its distributed oracle and its outputs."""
