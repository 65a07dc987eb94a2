"""Plain helpers for the sampling and pipeline tests: a tiny SamplingConfig, clips whose frames
and audio encode their own index and time, writing them as TFRecords and sampling them back."""

import numpy as np
import tensorflow as tf

from emotf import keys
from emotf.configs import SamplingConfig
from emotf.pipeline import record_files
from emotf.records.example import ClipRecord, make_example, parse_example
from emotf.sampling import sample_clip

TINY_RATE = 1000


def tiny_config(**overrides) -> SamplingConfig:
    """3 segments of 128-sample windows at 1 kHz, 16 px frames, 8 x 12 spectrograms.

    ``overrides`` replace fields (e.g. ``time_bins=13`` for an STFT that needs no resize).
    """
    fields = {
        "num_segments": 3,
        "window_seconds": 0.128,
        "sample_rate": TINY_RATE,
        "frame_size": 16,
        "frame_length": 32,
        "frame_step": 8,
        "fft_length": 32,
        "num_mel_bins": 8,
        "time_bins": 12,
        "freq_bins": 8,
    }
    fields.update(overrides)
    return SamplingConfig(**fields)


def flat_frames(num_frames: int, size: int = 16, step: int = 3) -> np.ndarray:
    """uint8 frames [num_frames, size, size, 3]; frame k is a flat image of value step * k."""
    return np.stack([np.full([size, size, 3], step * k, np.uint8) for k in range(num_frames)])


def frame_index(frames, step: int = 3) -> np.ndarray:
    """Inverse of flat_frames on sampled frames [..., H, W, 3]: k from the pixel at (8, 8)."""
    return np.round(np.asarray(frames)[..., 8, 8, 0] / step).astype(int)


def clip_record(
    i: int, num_frames: int, fold: int = 0, size: int = 16, fps: float = 10.0, rate: int = TINY_RATE
) -> ClipRecord:
    """Frame k is a flat image of value 3k; audio sample n holds n + 1 (time = n / rate)."""
    frames = [tf.io.encode_jpeg(f, quality=100).numpy() for f in flat_frames(num_frames, size)]
    num_samples = int(num_frames / fps * rate)
    return ClipRecord(
        clip_id=f"{1001 + i}_DFA_ANG_XX",
        actor_id=1001 + i,
        sentence="DFA",
        emotion="ANG",
        label=i % 6,
        intensity="XX",
        fold=fold,
        fps=fps,
        frames_jpeg=frames,
        face_boxes=np.zeros([num_frames, 4], np.float32),
        face_detected=np.ones([num_frames], np.int64),
        source_size=(size, size),
        sample_rate=rate,
        pcm16=np.arange(1, num_samples + 1, dtype=np.int16),
    )


def write_records(path, clips, options=None):
    """Write the clips to one TFRecord file (``options="GZIP"`` compresses it); returns path."""
    with tf.io.TFRecordWriter(str(path), options=options) as writer:
        for clip in clips:
            writer.write(make_example(clip).SerializeToString())
    return path


def read_records(records_dir, folds) -> tf.data.TFRecordDataset:
    """The serialized examples of the given folds' record files under records_dir."""
    return tf.data.TFRecordDataset([str(p) for p in record_files(records_dir, folds)])


def first_record(records_dir, fold: int) -> tf.Tensor:
    """The first serialized example of one fold."""
    return next(iter(read_records(records_dir, [fold])))


def sample_parsed(record, config: SamplingConfig, training: bool, seed=(0, 0)):
    """sample_clip on a parse_example dict (its frames, waveform, fps and rate)."""
    return sample_clip(
        record[keys.VIDEO_FRAMES],
        record[keys.PARSED_NUM_FRAMES],
        record[keys.VIDEO_FPS],
        record[keys.PARSED_WAVEFORM],
        record[keys.PARSED_NUM_SAMPLES],
        record[keys.AUDIO_SAMPLE_RATE],
        config,
        training,
        seed,
    )


def sample_serialized(serialized, config: SamplingConfig, training: bool, seed=(0, 0)):
    """parse_example then sample_parsed (usable eagerly and inside Dataset.map)."""
    return sample_parsed(parse_example(serialized), config, training, seed)
