"""Building and reading the TFRecords: raw media -> face crops + audio -> one Example per clip.

Modules: `schema` (every feature of the record, declared once), `example` (the pure Example
writer and the one parser, both from `schema`), `preprocess` + `stream` (the one raw-media
contract shared with `emotf-predict`), `faces`, `media`, `config` (`BuildConfig` and the one
`ClipSettings` of a build), `plan` (the corpus's clips -> shards and record labels), `build` (+
`clip_worker` and its process `pool`, the one shard writer `shards`, the Beam runner
`beam_build`, the manifest writer `manifest_writer`), `folder` (the records folder's file names:
`RecordsFolder`), `manifest`, `resume`, `lock`, `staging` (media on URLs decoded from local
copies), `media_checks`.
"""
