"""Console scripts: each module parses arguments and calls one library function.

TensorFlow's C++ INFO/WARNING chatter is silenced for the console scripts only (set before
TensorFlow is imported; export TF_CPP_MIN_LOG_LEVEL=0 to see it again).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
