"""
RLPD+ (paper Sec. 5.1 and Appendix C): TD3 that oversamples demonstrations, with IBRL's networks.

Half of every batch comes from the demonstrations and, as the "+" of RLPD+, from successful online episodes,
which grow the oversampled set. The actor has dropout and the critics are the same ensemble as IBRL's; there is
no IL policy. Vanilla RLPD: ``oversample_successes=False`` and ``policy_kwargs=dict(dropout=0.0)``.
"""

from typing import Any, Optional

from sb3_ibrl.data.demo_files import DemoSource
from sb3_ibrl.ibrl.ibrl import IBRL


class RLPD(IBRL):
    """
    RLPD+ on IBRL's TD3 backbone and networks: ``demo_fraction`` of each batch from demos (+ successes).

    Takes every argument of :class:`~sb3_ibrl.IBRL` except ``il_policy``, ``bootstrap_proposal`` and ``warmup``
    (no IL policy: warm-up actions are uniformly random, as in the authors' release).

    :param policy: the policy model to use
    :param env: the environment to learn from
    :param demonstrations: the demonstrations to oversample (required)
    :param demo_fraction: fraction of each batch drawn from demos and successful online episodes (RLPD: 0.5)
    :param oversample_successes: add successful online episodes to the oversampled set (RLPD+); ``False`` is RLPD
    :param kwargs: other arguments of :class:`~sb3_ibrl.IBRL`
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        demonstrations: Optional[DemoSource] = None,
        demo_fraction: float = 0.5,
        oversample_successes: bool = True,
        **kwargs: Any,
    ):
        for name in ("il_policy", "bootstrap_proposal", "warmup"):
            if name in kwargs:
                raise TypeError(f"RLPD has no IL policy: {name!r} is not an option (use IBRL for it)")
        replay_buffer_kwargs = dict(kwargs.pop("replay_buffer_kwargs", None) or {})
        replay_buffer_kwargs.setdefault("oversample_successes", oversample_successes)
        super().__init__(
            policy,
            env,
            il_policy=None,
            demonstrations=demonstrations,
            demo_fraction=demo_fraction,
            warmup="random",
            replay_buffer_kwargs=replay_buffer_kwargs,
            **kwargs,
        )

    def _setup_model(self) -> None:
        if self.demo_fraction <= 0:
            raise ValueError(f"RLPD oversamples demonstrations: demo_fraction must be in (0, 1), got {self.demo_fraction}")
        super()._setup_model()
