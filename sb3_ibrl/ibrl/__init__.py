from sb3_ibrl.ibrl.ibrl import IBRL
from sb3_ibrl.ibrl.policies import IBRLPolicy, MlpPolicy

__all__ = ["IBRL", "IBRLPolicy", "MlpPolicy"]
