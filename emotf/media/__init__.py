"""Media: raw video and audio -> face crops and 16 kHz audio, the one contract shared by the
records build and serving (files, URLs, live streams and capture devices; MTCNN faces and
their tracks)."""
