"""Building and reading the TFRecords: raw media -> face crops + audio -> one Example per clip.

Modules: `example` (the pure Example writer and the one parser), `preprocess` + `stream` (the one
raw-media contract shared with `emotf-predict`), `faces`, `media`, `build` (+ `clip_worker`), `manifest`,
`lock`, `media_checks`.
"""
