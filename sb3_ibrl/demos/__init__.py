"""
Scripted demonstrations of the simulated tasks, recorded into robomimic HDF5 files (no download needed).

- :mod:`sb3_ibrl.demos.experts`: the scripted experts (Meta-World's own policies; proportional ``OSC_POSE``
  controllers for robosuite Lift, Can and Square), reading the flat state vector ``info["state"]``.
- :mod:`sb3_ibrl.demos.recording`: record successful episodes in any observation mode, write them to a robomimic
  HDF5 file that ``IBRL(demonstrations=path)`` and ``python -m sb3_ibrl.bc`` read as the env's observations, and
  replay a file's actions from the recorded reset seeds.
- ``python -m sb3_ibrl.demos``: the command line (``--help``).

The recorded files are read by :mod:`sb3_ibrl.data` (``Episode``, demo files, robomimic HDF5).
"""

from sb3_ibrl.demos.experts import MetaWorldExpert, PickPlaceExpert, make_scripted_expert
from sb3_ibrl.demos.recording import (
    SCRIPTED_ENV_IDS,
    RecordedDemo,
    ReplayReport,
    make_scripted_env,
    record_demos,
    replay_demos,
    save_demos,
)

__all__ = [
    "SCRIPTED_ENV_IDS",
    "MetaWorldExpert",
    "PickPlaceExpert",
    "RecordedDemo",
    "ReplayReport",
    "make_scripted_env",
    "make_scripted_expert",
    "record_demos",
    "replay_demos",
    "save_demos",
]
