"""TFRecord keys of the emotf clip schema: the only place a key string is typed.

Each stored key is declared as a feature (kind, dtype, shape, meaning) once, in
`emotf.records.schema`; `tfrecords_spec/SPEC.md` shows that table. Bump SCHEMA_VERSION (and the
changelog there) on any incompatible change.
"""

SCHEMA_VERSION = 1

# --- clip identity and labels (context) ---
SCHEMA_VERSION_KEY = "schema_version"
CLIP_ID = "clip_id"
ACTOR_ID = "actor_id"
SENTENCE = "sentence"
EMOTION = "emotion"
LABEL = "label"
INTENSITY = "intensity"
FOLD = "fold"

# --- video: face crops, one per source frame ---
VIDEO_FPS = "video/fps"
VIDEO_FRAMES = "video/frames"
VIDEO_FACE_BOXES = "video/face_boxes"
VIDEO_FACE_DETECTED = "video/face_detected"
VIDEO_SOURCE_SIZE = "video/source_size"

# --- audio ---
AUDIO_SAMPLE_RATE = "audio/sample_rate"
AUDIO_PCM16 = "audio/pcm16"

# Names of the tensors `emotf.records.example.parse_example` returns (not stored keys).
PARSED_NUM_FRAMES = "video/num_frames"
PARSED_WAVEFORM = "audio/waveform"
PARSED_NUM_SAMPLES = "audio/num_samples"

FACE_CROP_SIZE = 224
AUDIO_SAMPLE_RATE_HZ = 16000
