import os

from sb3_ibrl.baselines import RLPD, SQIL, PtFt
from sb3_ibrl.ibrl import IBRL

# Registers the built-in gymnasium environments (e.g. "PointGoal-v0")
import sb3_ibrl.envs  # noqa: F401  isort: skip

# Read version from file
version_file = os.path.join(os.path.dirname(__file__), "version.txt")
with open(version_file) as file_handler:
    __version__ = file_handler.read().strip()

__all__ = ["IBRL", "RLPD", "SQIL", "PtFt", "__version__"]
