"""
SQIL (Reddy et al., 2020; paper Appendix B) on IBRL's TD3 backbone and networks.

Demonstrations are stored with reward +1 on every step, online transitions with reward 0 (the env's reward is
ignored), and every batch is half demonstrations, half online data. There is no IL policy.
"""

from typing import Any, Callable, Optional, Sequence

import numpy as np

from sb3_ibrl.data.demo_files import DemoSource
from sb3_ibrl.data.episodes import Episode, Obs
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer
from sb3_ibrl.ibrl.ibrl import IBRL


class SQILReplayBuffer(IBRLReplayBuffer):
    """
    The replay buffer of SQIL: demonstrations rewarded 1 at every step, online transitions 0, oversampled demos.

    Takes the arguments of :class:`~sb3_ibrl.data.replay_buffer.IBRLReplayBuffer`; successful online episodes are
    never added to the oversampled set.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["oversample_successes"] = False
        super().__init__(*args, **kwargs)

    def add_demonstrations(
        self,
        episodes: Sequence[Episode],
        scale_action: Callable[[np.ndarray], np.ndarray],
        next_il_actions: Optional[Sequence[np.ndarray]] = None,
    ) -> None:
        relabeled = [Episode(ep.obs, ep.acts, np.ones(len(ep), dtype=np.float32), ep.terminal) for ep in episodes]
        super().add_demonstrations(relabeled, scale_action, next_il_actions)

    def add(self, obs: Obs, next_obs: Obs, action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list) -> None:
        super().add(obs, next_obs, action, np.zeros_like(reward), done, infos)


class SQIL(IBRL):
    """
    SQIL: soft Q imitation learning with constant rewards (+1 demos, 0 online), on a TD3 backbone.

    Takes every argument of :class:`~sb3_ibrl.IBRL` except ``il_policy``, ``bootstrap_proposal``, ``warmup``
    and ``replay_buffer_class`` (always :class:`SQILReplayBuffer`).

    :param policy: the policy model to use
    :param env: the environment to learn from
    :param demonstrations: the demonstrations (required)
    :param demo_fraction: fraction of each batch drawn from the demonstrations (SQIL: 0.5)
    :param kwargs: other arguments of :class:`~sb3_ibrl.IBRL`
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        demonstrations: Optional[DemoSource] = None,
        demo_fraction: float = 0.5,
        **kwargs: Any,
    ):
        for name in ("il_policy", "bootstrap_proposal", "warmup", "replay_buffer_class"):
            if name in kwargs:
                raise TypeError(f"SQIL does not take {name!r}")
        super().__init__(
            policy,
            env,
            il_policy=None,
            demonstrations=demonstrations,
            demo_fraction=demo_fraction,
            warmup="random",
            replay_buffer_class=SQILReplayBuffer,
            **kwargs,
        )

    def _setup_model(self) -> None:
        if not 0 < self.demo_fraction < 1:
            raise ValueError(
                f"SQIL samples half of each batch from demos: demo_fraction must be in (0, 1), got {self.demo_fraction}"
            )
        super()._setup_model()

    def learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> "SQIL":  # type: ignore[override]
        buffer = self.replay_buffer
        if not isinstance(buffer, IBRLReplayBuffer) or buffer.n_demo_transitions == 0:
            raise ValueError(
                "SQIL learns from demonstrations: pass demonstrations= (or load the replay buffer that holds them)"
            )
        return super().learn(total_timesteps, *args, **kwargs)
