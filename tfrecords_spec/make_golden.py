"""Regenerate the golden record: `python tfrecords_spec/make_golden.py`.

Writes one synthetic clip (emotf.synthetic.sample, 0.6 s, 480x360 at 30 fps), runs the real
`emotf-build-records` code on it (JPEG quality 40 to keep the file small), and copies the shard
to `tfrecords_spec/golden/golden.tfrecord` with `golden.json`, the values a test expects when it
parses the record with `emotf.records.example.parse_example`. Regenerate on every schema version bump.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent / "golden"


def main() -> None:
    import numpy as np
    import soundfile

    from emotf import keys
    from emotf.records.build import build_records
    from emotf.records.config import BuildConfig
    from emotf.media.faces import FaceTrackerConfig
    from emotf.records.example import read_records
    from emotf.synthetic.sample import SampleConfig, make_sample

    work = Path(tempfile.mkdtemp(prefix="emotf-golden-"))
    sample = SampleConfig(num_actors=1, clips_per_actor=1, min_duration=0.6, max_duration=0.6,
                          median_duration=0.6, seed=0)
    (video,) = make_sample(work / "data", sample)
    manifest = build_records(BuildConfig(
        data_dir=str(work / "data"), out_dir=str(work / "out"), workers=1, progress=False,
        tracker=FaceTrackerConfig(jpeg_quality=40)))
    (shard,) = manifest["shards"]
    HERE.mkdir(exist_ok=True)
    target = HERE / "golden.tfrecord"
    shutil.copy(work / "out" / shard, target)
    (rec,) = list(read_records([target]))
    wav, _ = soundfile.read(work / "data" / "AudioWAV" / f"{video.stem}.wav", dtype="int16")
    expected = {
        "schema_version": keys.SCHEMA_VERSION,
        "clip_id": rec[keys.CLIP_ID].numpy().decode(),
        "actor_id": int(rec[keys.ACTOR_ID]),
        "sentence": rec[keys.SENTENCE].numpy().decode(),
        "emotion": rec[keys.EMOTION].numpy().decode(),
        "label": int(rec[keys.LABEL]),
        "intensity": rec[keys.INTENSITY].numpy().decode(),
        "fold": int(rec[keys.FOLD]),
        "fps": float(rec[keys.VIDEO_FPS]),
        "num_frames": int(rec[keys.PARSED_NUM_FRAMES]),
        "source_size": [int(v) for v in rec[keys.VIDEO_SOURCE_SIZE]],
        "sample_rate": int(rec[keys.AUDIO_SAMPLE_RATE]),
        "num_samples": int(rec[keys.PARSED_NUM_SAMPLES]),
        "pcm16_sha256": hashlib.sha256(np.asarray(wav, "<i2").tobytes()).hexdigest(),
        "face_boxes_first": [round(float(v), 4) for v in rec[keys.VIDEO_FACE_BOXES][0]],
        "face_detected": [int(v) for v in rec[keys.VIDEO_FACE_DETECTED]],
    }
    (HERE / "golden.json").write_text(json.dumps(expected, indent=1) + "\n")
    shutil.rmtree(work)
    print(f"wrote {target} ({target.stat().st_size} bytes) and golden.json")


if __name__ == "__main__":
    main()
