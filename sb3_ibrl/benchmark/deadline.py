"""
Stop an off-policy ``learn`` call in time: a callback that ends training at the first env step after which the
time still needed (an evaluation, a checkpoint) would overrun a deadline, and keeps that step.

The headline run (:mod:`sb3_ibrl.benchmark.headline`) passes it to every ``learn`` call, so that ``--time-limit``
holds however long an env step or an update takes (the first updates of a compiled model take minutes).
"""

import time
from typing import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


class StopAtDeadline(BaseCallback):
    """
    End ``learn`` once ``clock() + reserve`` passes ``deadline``, after storing the step just taken.

    SB3's ``collect_rollouts`` calls the callback between ``env.step`` and storing that step: a plain ``return False``
    would drop the step (its transitions, the returns and IL actions that IBRL records as it stores them, the last
    observation) while ``num_timesteps`` counts it. So the callback stores it first, as ``collect_rollouts`` would have
    next (the transition, the episode count, the action noise of the episodes that ended), and the model stops with
    its replay buffer, its step count and its last observation in agreement: as if it had learned exactly that many
    steps.

    :param deadline: the ``clock()`` value by which the caller must be done
    :param reserve: seconds the caller still needs after training stops (may be changed between ``learn`` calls)
    :param clock: the clock of ``deadline`` (``time.perf_counter``)
    """

    def __init__(self, deadline: float, reserve: float = 0.0, clock: Callable[[], float] = time.perf_counter):
        super().__init__()
        self.deadline = deadline
        self.reserve = reserve
        self.clock = clock
        self.stopped = False  # whether the last learn call was ended by the deadline

    @property
    def due(self) -> bool:
        """Whether the reserve no longer fits before the deadline."""
        return self.clock() + self.reserve > self.deadline

    def _on_training_start(self) -> None:
        self.stopped = False

    def _on_step(self) -> bool:
        if not self.due:
            return True
        # What collect_rollouts does after the callback for this step (SB3 2.x), but the logging
        model, step = self.model, self.locals  # collect_rollouts' local variables (BaseCallback.update_locals)
        missing = sorted({"replay_buffer", "buffer_actions", "new_obs", "rewards", "dones", "infos", "env"} - set(step))
        if missing:  # a learn() that is not SB3's off-policy collect_rollouts, or an SB3 that renamed them
            raise RuntimeError(f"StopAtDeadline needs collect_rollouts' variables {missing} to keep the step it stops at")
        dones = step["dones"]
        model._update_info_buffer(step["infos"], dones)
        model._store_transition(  # type: ignore[attr-defined]
            step["replay_buffer"], step["buffer_actions"], step["new_obs"], step["rewards"], dones, step["infos"]
        )
        model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
        model._on_step()  # type: ignore[attr-defined]
        for index in np.flatnonzero(dones):  # the episodes that ended at this step
            model._episode_num += 1  # type: ignore[attr-defined]
            if step.get("action_noise") is not None:
                step["action_noise"].reset(**({"indices": [index]} if step["env"].num_envs > 1 else {}))
        self.stopped = True
        return False
