"""The synthetic CREMA-D sample: its config and clip plans (`config`), the clips (`sample`),
rendered media (`media`), long videos (`video`)."""
