"""What `--fold all` frees between folds (`emotf.training.train._free_fold`)."""

import keras

from emotf.training.train import _free_fold


def test_free_fold_resets_keras_state_and_keeps_the_dtype_policy():
    before = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        keras.layers.Dense(2)
        assert keras.layers.Dense(2).name != "dense"  # auto-names count up in one session
        _free_fold()
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        assert keras.layers.Dense(2).name == "dense"  # a fresh session, as in a new process
    finally:
        keras.config.set_dtype_policy(before)
