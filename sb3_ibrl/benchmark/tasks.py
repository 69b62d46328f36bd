"""
Benchmark tasks and their settings: demo counts and budgets of the paper, and two settings profiles.

- ``paper``: Table 2 of the paper (states: 3 x 512 MLPs, 3 x 1024 for Square, E = 5, G = 5, lr 1e-4, batch 256;
  pixels: ViT, E = 2, G = 1), BC trained for 100K batches.
- ``cpu``: the short-run settings of the main job (``examples/metaworld_quickstart.py``), for state tasks on a CPU:
  ``[256, 256]`` networks, E = 5, one critic and one actor update per env step, lr 1e-3, batch 128, 10-step returns,
  tau 0.05; BC trained for 5000 batches. Not the paper's settings: results under it are labelled as such.

``PointGoal-v0`` (the built-in toy task) always uses its own calibrated settings, in both profiles.
"""

from dataclasses import dataclass, field
from typing import Any

from sb3_ibrl.envs import METAWORLD_TASKS, POINT_GOAL_IBRL_SETTINGS, POINT_GOAL_ID, ROBOMIMIC_TASKS

PROFILES = ("paper", "cpu")

# Paper Sec. 5.1 / Table 2
PAPER_DEMOS = {"Lift": 1, "Can": 10, "Square": 50, **{name: 3 for name in METAWORLD_TASKS}}
# Interaction budgets: Can and Meta-World 100K (paper Sec. 5.2 and Fig. 5); Lift 100K; Square 1M (hyperparams/ibrl.yml)
PAPER_BUDGETS = {"Lift": 100_000, "Can": 100_000, "Square": 1_000_000, **{name: 100_000 for name in METAWORLD_TASKS}}
PAPER_LEARNING_STARTS = {"Can": 5000, "Square": 8000}

PAPER_STATE = dict(
    learning_rate=1e-4,
    batch_size=256,
    tau=0.01,
    gamma=0.99,
    n_steps=3,
    gradient_steps=5,
    policy_delay=5,
    learning_starts=1000,
    policy_kwargs=dict(net_arch=[512, 512, 512], n_critics=5, dropout=0.5, layer_norm=True),
)
PAPER_PIXEL = dict(
    PAPER_STATE,
    gradient_steps=1,
    policy_delay=1,
    policy_kwargs=dict(encoder="vit", net_arch=[1024, 1024], q_hidden_dim=1024, n_critics=2, dropout=0.5, layer_norm=True),
)
CPU_STATE = dict(
    learning_rate=1e-3,
    batch_size=128,
    learning_starts=1000,
    gradient_steps=1,
    policy_delay=1,
    n_steps=10,
    tau=0.05,
    policy_kwargs=dict(net_arch=[256, 256], n_critics=5, dropout=0.5, layer_norm=True),
)


@dataclass
class TaskSpec:
    """
    A benchmark task.

    :param env_id: the gymnasium id
    :param n_demos: demonstrations (paper's count)
    :param budget: env steps of a run (paper's budget)
    :param eval_every: evaluate every this many env steps
    :param rl_settings: keyword arguments of every RL method (IBRL and the baselines)
    :param bc_settings: keyword arguments of :func:`sb3_ibrl.il.training.train_bc`
    :param ibrl_demo_fraction: IBRL's own oversampling (paper: 0.5 for Square only)
    """

    env_id: str
    n_demos: int
    budget: int
    eval_every: int
    rl_settings: dict[str, Any] = field(default_factory=dict)
    bc_settings: dict[str, Any] = field(default_factory=dict)
    ibrl_demo_fraction: float = 0.0


def task_name(env_id: str) -> str:
    """``"Lift-state-v0"`` -> ``"Lift"``."""
    return env_id.split("-")[0]


def known_task_ids() -> list[str]:
    """Every env id the benchmark knows."""
    ids = [POINT_GOAL_ID]
    ids += [f"{name}-{mode}-v0" for name in ROBOMIMIC_TASKS for mode in ("state", "pixel", "pixelproprio")]
    ids += [f"{name}-{mode}-v0" for name in METAWORLD_TASKS for mode in ("state", "pixel")]
    return ids


def get_task(env_id: str, profile: str = "paper") -> TaskSpec:
    """
    The task spec of an env id under a settings profile.

    :param env_id: one of :func:`known_task_ids`
    :param profile: ``"paper"`` or ``"cpu"``
    """
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}: expected one of {PROFILES}")
    if env_id not in known_task_ids():
        raise ValueError(f"Unknown benchmark task {env_id!r}: expected one of {known_task_ids()}")
    if env_id == POINT_GOAL_ID:
        bc = dict(n_batches=1000, learning_rate=1e-3, net_arch=[64, 64])
        return TaskSpec(
            env_id, n_demos=1, budget=3000, eval_every=500, rl_settings=dict(POINT_GOAL_IBRL_SETTINGS), bc_settings=bc
        )
    name = task_name(env_id)
    pixel = "-pixel" in env_id
    if profile == "cpu":
        if pixel:
            raise ValueError(f"The 'cpu' profile is for state tasks; use the 'paper' profile for {env_id}")
        rl, bc = dict(CPU_STATE), dict(n_batches=5000)
    else:
        rl, bc = dict(PAPER_PIXEL if pixel else PAPER_STATE), dict(n_batches=100_000)
        rl["learning_starts"] = PAPER_LEARNING_STARTS.get(name, rl["learning_starts"])
        if name == "Square" and not pixel:
            rl["policy_kwargs"] = dict(rl["policy_kwargs"], net_arch=[1024, 1024, 1024])
    budget = PAPER_BUDGETS[name]
    return TaskSpec(
        env_id,
        n_demos=PAPER_DEMOS[name],
        budget=budget,
        eval_every=budget // 20,
        rl_settings=rl,
        bc_settings=bc,
        ibrl_demo_fraction=0.5 if name == "Square" else 0.0,
    )
