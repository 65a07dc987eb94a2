"""Training: the fit loop, the run folder it owns, run data and state, schedules,
precision and the distribution strategy."""
