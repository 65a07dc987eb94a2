"""emotf: audio-visual emotion recognition on CREMA-D with TensorFlow/Keras.

Implements temporal aggregation of asynchronous audio and video: N temporal segments per clip,
a random face frame and an offset audio window per segment, a twin audio-visual CNN per
segment, and the sum of the N softmax outputs as the clip score.
"""

__version__ = "0.1.0"

import os as _os

if _os.environ.get("EMOTF_QUIET_TF") == "1":  # set by the console scripts for their workers
    from emotf.quiet import import_tensorflow_quietly as _quiet

    _quiet()
