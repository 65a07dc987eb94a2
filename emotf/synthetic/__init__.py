"""The synthetic CREMA-D sample: clip plans (`sample`), rendered media (`media`), long videos (`video`)."""
