"""emotf: audio-visual emotion recognition on CREMA-D with TensorFlow/Keras.

Implements temporal aggregation of asynchronous audio and video: N temporal segments per clip,
a random face frame and an offset audio window per segment, a twin audio-visual CNN per
segment, and the sum of the N softmax outputs as the clip score.
"""

__version__ = "0.1.0"

import os as _os

from emotf.quiet import QUIET_ENV as _QUIET_ENV
from emotf.quiet import import_tensorflow_quietly as _import_tensorflow_quietly

if _os.environ.get(_QUIET_ENV) == "1":  # set by the console scripts for their workers
    _import_tensorflow_quietly()
