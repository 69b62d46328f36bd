"""
The imitation-learning side of IBRL.

- :mod:`sb3_ibrl.il.frozen`: the frozen IL policy that proposes actions (:func:`as_il_policy` turns an imitation
  ``BC`` trainer, an SB3 policy, a module, a callable or a saved file into a :class:`FrozenILPolicy`).
- :mod:`sb3_ibrl.il.training`: behaviour cloning with ``imitation``'s ``bc.BC`` (ResNet-18 + random shift for
  images, an MLP for states), saving and evaluating the BC policy.
- :mod:`sb3_ibrl.il.demo_batches`: the demos as ``imitation`` reads them: batches with a fresh random shift of their
  images, on the host or kept on the training device.
- :mod:`sb3_ibrl.il.sizing`: how many batches BC trains when not told (:func:`bc_batches`, sized to the demos) and
  the printed estimate of how long it takes.
- :mod:`sb3_ibrl.il.cli`: the command line, ``python -m sb3_ibrl.bc``.
"""

from sb3_ibrl.il.frozen import FrozenILPolicy, ILPolicySource, as_il_policy
from sb3_ibrl.il.sizing import bc_batches
from sb3_ibrl.il.training import bc_action_error, evaluate_bc_policy, make_bc_policy, save_bc_policy, train_bc

__all__ = [
    "FrozenILPolicy",
    "ILPolicySource",
    "as_il_policy",
    "bc_action_error",
    "bc_batches",
    "evaluate_bc_policy",
    "make_bc_policy",
    "save_bc_policy",
    "train_bc",
]
