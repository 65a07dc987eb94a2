"""Building and reading the TFRecords: raw media -> face crops + audio -> one Example per clip.

Modules: `example` (the pure Example writer and the one parser), `preprocess` + `stream` (the one
raw-media contract shared with `emotf-predict`), `faces`, `media`, `build` (+ `clip_worker` and its
process `pool`, the one shard writer `shards`, the Beam runner `beam_build`, the manifest writer
`summary`), `manifest`, `resume`, `lock`, `staging` (media on URLs decoded from local copies),
`media_checks`.
"""
