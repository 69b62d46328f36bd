"""
Demonstrations and replay.

- :mod:`sb3_ibrl.data.episodes`: the :class:`Episode` type, observation batch helpers, imitation adapters, checks.
- :mod:`sb3_ibrl.data.demo_files`: ``.npz`` demo files, and :func:`to_episodes` for any demonstration source.
- :mod:`sb3_ibrl.data.robomimic_hdf5`: the robomimic HDF5 file format and its reader (h5py, no ``robomimic`` package).
- :mod:`sb3_ibrl.data.robomimic_writer`: writing robomimic HDF5 files.
- :mod:`sb3_ibrl.data.obs_keys`: mapping a robomimic file's observation keys to an env's observation space.
- :mod:`sb3_ibrl.data.nstep_buffer`: n-step replay that stores each frame once, and the memory check.
- :mod:`sb3_ibrl.data.replay_buffer`: :class:`IBRLReplayBuffer`, with permanent demos and success oversampling.
"""

from sb3_ibrl.data.demo_files import DemoSource, load_episodes, save_episodes, to_episodes
from sb3_ibrl.data.episodes import Episode, check_episodes
from sb3_ibrl.data.nstep_buffer import NStepBuffer
from sb3_ibrl.data.obs_keys import match_obs_keys, read_episodes_for_env
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer
from sb3_ibrl.data.robomimic_hdf5 import read_robomimic_episodes
from sb3_ibrl.data.robomimic_writer import write_robomimic_hdf5

__all__ = [
    "DemoSource",
    "Episode",
    "IBRLReplayBuffer",
    "NStepBuffer",
    "check_episodes",
    "load_episodes",
    "match_obs_keys",
    "read_episodes_for_env",
    "read_robomimic_episodes",
    "save_episodes",
    "to_episodes",
    "write_robomimic_hdf5",
]
