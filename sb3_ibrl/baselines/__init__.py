"""
The paper's baselines on IBRL's TD3 backbone and networks: RLPD+, Pt-Ft and SQIL.
(TD3 with demos in its buffer is :class:`~sb3_ibrl.IBRL` without an IL policy.)
"""

from sb3_ibrl.baselines.ptft import PtFt
from sb3_ibrl.baselines.rlpd import RLPD
from sb3_ibrl.baselines.sqil import SQIL, SQILReplayBuffer

__all__ = ["RLPD", "SQIL", "PtFt", "SQILReplayBuffer"]
