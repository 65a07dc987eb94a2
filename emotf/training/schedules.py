"""Learning-rate schedules of `emotf-train` (`TrainerConfig.lr_schedule`).

`paper` restarts the staircase every epoch (the paper's literal schedule), `step` runs it on the
global step, `cosine` decays to 0 over the run, `constant` keeps the rate. All depend only on
the optimizer's iteration counter, which checkpoints hold, so a resumed run continues exactly.
"""

from __future__ import annotations

import keras
from keras import ops

from emotf.configs import TrainConfig, TrainerConfig


@keras.saving.register_keras_serializable(package="emotf")
class StaircaseDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr * rate ** floor(s / decay_steps); s = step mod restart_steps when restart_steps > 0.

    Depends only on the optimizer's iteration counter, which checkpoints hold, so it is
    resume-safe (the paper's per-epoch restart included).
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, restart_steps=0):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_rate = float(decay_rate)
        self.restart_steps = int(restart_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.restart_steps > 0:
            step = ops.mod(step, float(self.restart_steps))
        exponent = ops.floor(step / float(self.decay_steps))
        return self.initial_learning_rate * ops.power(self.decay_rate, exponent)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "restart_steps": self.restart_steps,
        }


def make_schedule(config: TrainerConfig | TrainConfig, steps_per_epoch: int):
    """The learning rate (schedule or float) of `config.lr_schedule` for `steps_per_epoch`
    (a `TrainerConfig`, or the `TrainConfig` holding one)."""
    lr = config.learning_rate
    if config.lr_schedule == "paper":
        return StaircaseDecay(
            lr, config.decay_steps, config.decay_rate, restart_steps=steps_per_epoch
        )
    if config.lr_schedule == "step":
        return StaircaseDecay(lr, config.decay_steps, config.decay_rate)
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, steps_per_epoch * config.epochs)
        )
    return lr
