"""Flags shared by the end-to-end tests that drive the console scripts."""

# The smallest model the flags can ask for: two segments, four filters, four FC units.
TINY_MODEL_FLAGS = [
    "--model.num_segments",
    "2",
    "--model.video_stem_width",
    "4",
    "--model.video_widths",
    "4",
    "--model.audio_widths",
    "4,4",
    "--model.fc_units",
    "4",
]
