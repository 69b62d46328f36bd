"""
Behaviour cloning with the ``imitation`` library: the IL policy that IBRL bootstraps from.

The policy is an SB3 ``ActorCriticPolicy``: an MLP for state observations, or the paper's ResNet-18
(GroupNorm, small stem, see :mod:`sb3_ibrl.networks.resnet`) for images and Dict observations with images.
Pixel demos are fed through :class:`~sb3_ibrl.il.demo_batches.DemoBatches`, which applies a fresh DrQ random shift
to every batch.

``imitation`` is an optional dependency that must be installed without its pins (they downgrade
SB3 and gymnasium): ``pip install --no-deps imitation==1.0.1 tqdm``.

The loss is ``imitation``'s: the negative log-likelihood of the demo actions under the policy's diagonal
Gaussian (plus a small entropy bonus), not the paper's MSE; the Gaussian's mean, i.e. the deterministic
action, is the IL action. The rest follows the paper: Adam, learning rate 1e-4, batch 256, random shift
(pad 4), gradient norm clipped at 5.
"""

import os
import warnings
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import get_device
from torch import nn
from tqdm.auto import tqdm

from sb3_ibrl.common.evaluation import evaluate_policy_success
from sb3_ibrl.common.files import atomic_path
from sb3_ibrl.common.spaces import has_image
from sb3_ibrl.data.demo_files import DemoSource, to_episodes
from sb3_ibrl.data.episodes import Episode, check_episodes, obs_index
from sb3_ibrl.il.demo_batches import DemoBatches, import_bc
from sb3_ibrl.il.sizing import SIZED_NOTE, BCTimeEstimate, bc_batches
from sb3_ibrl.networks.resnet import ResNet18Extractor

FEATURES = ("auto", "mlp", "resnet18")


def resolve_features(features: str, observation_space: spaces.Space) -> str:
    """
    Pick the BC network for an observation space.

    :param features: ``"auto"`` (ResNet-18 for images and Dicts with an image, else MLP), ``"mlp"`` or ``"resnet18"``
    :param observation_space: the observation space
    :return: ``"mlp"`` or ``"resnet18"``
    """
    if features not in FEATURES:
        raise ValueError(f"Unknown features {features!r}: expected one of {FEATURES}")
    image = has_image(observation_space)
    if features == "auto":
        return "resnet18" if image else "mlp"
    if features == "resnet18" and not image:
        raise ValueError(
            f"features='resnet18' needs image observations (uint8 (C, H, W) Box, or a Dict with one); got {observation_space}"
        )
    if features == "mlp" and image and isinstance(observation_space, spaces.Dict):
        raise ValueError("features='mlp' does not support Dict observations with images: use 'resnet18' (or 'auto')")
    return features


def make_bc_policy(
    observation_space: spaces.Space,
    action_space: spaces.Box,
    features: str = "auto",
    net_arch: Optional[Union[list[int], dict[str, list[int]]]] = None,
    resnet_width: int = 64,
    learning_rate: float = 1e-4,
) -> ActorCriticPolicy:
    """
    Build the SB3 policy that BC trains.

    ``"mlp"``: SB3's default extractor (flatten) and an MLP (default ``[256, 256]``, tanh). ``"resnet18"``:
    :class:`~sb3_ibrl.networks.resnet.ResNet18Extractor` (512 features per image, proprio appended), then the
    paper's ``Linear 1024 -> ReLU`` head (default ``net_arch=dict(pi=[1024], vf=[])``; SB3's MLP has no
    LayerNorm), no orthogonal re-initialization (the ResNet keeps its Kaiming init).

    :param observation_space: the observation space
    :param action_space: the action space
    :param features: ``"auto"``, ``"mlp"`` or ``"resnet18"`` (see :func:`resolve_features`)
    :param net_arch: hidden sizes after the features extractor
    :param resnet_width: base channels of the ResNet-18 (paper: 64)
    :param learning_rate: learning rate stored in the policy (BC uses its own optimizer)
    :return: the policy
    """
    if resolve_features(features, observation_space) == "mlp":
        return ActorCriticPolicy(
            observation_space, action_space, lambda _: learning_rate, net_arch=[256, 256] if net_arch is None else net_arch
        )
    return ActorCriticPolicy(
        observation_space,
        action_space,
        lambda _: learning_rate,
        net_arch=dict(pi=[1024], vf=[]) if net_arch is None else net_arch,
        activation_fn=nn.ReLU,
        ortho_init=False,
        features_extractor_class=ResNet18Extractor,
        features_extractor_kwargs=dict(width=resnet_width),
    )


def train_bc(
    demonstrations: DemoSource,
    observation_space: spaces.Space,
    action_space: spaces.Box,
    n_batches: Optional[int] = None,
    batch_size: int = 256,
    learning_rate: float = 1e-4,
    net_arch: Optional[Union[list[int], dict[str, list[int]]]] = None,
    seed: int = 0,
    device: str = "auto",
    verbose: int = 0,
    features: str = "auto",
    augment: bool = True,
    pad: int = 4,
    resnet_width: int = 64,
    max_grad_norm: Optional[float] = 5.0,
    progress_bar: bool = False,
    print_estimate: bool = False,
    callback: Optional[Callable[[int, ActorCriticPolicy], None]] = None,
) -> Any:
    """
    Train a BC policy with ``imitation``'s ``bc.BC`` (Gaussian NLL; its mean action is the IL action).

    :param demonstrations: demo file path, imitation trajectories or ``Episode`` objects
    :param observation_space: the env's observation space
    :param action_space: the env's action space
    :param n_batches: number of gradient steps; ``None``: sized to the demonstrations (:func:`~sb3_ibrl.il.sizing.bc_batches`:
        1000 passes over the demo transitions, at least 10K batches and at most the paper's 100K)
    :param batch_size: minibatch size (paper: 256); capped at the number of demo transitions
    :param learning_rate: Adam learning rate (paper: 1e-4)
    :param net_arch: hidden sizes after the features (default ``[256, 256]`` for the MLP, ``dict(pi=[1024], vf=[])``
        for the ResNet-18)
    :param seed: random seed (network init, shuffling, random shift)
    :param device: torch device
    :param verbose: 0 for silence, 1 to print imitation's training log
    :param features: ``"auto"`` (ResNet-18 for image / Dict-with-image observations, MLP for states), ``"mlp"``
        or ``"resnet18"``
    :param augment: random shift of the images in every batch (no effect without images)
    :param pad: random shift padding in pixels (paper: 4)
    :param resnet_width: base channels of the ResNet-18 (paper: 64; small values for quick tests)
    :param max_grad_norm: clip the gradient norm before every Adam step (paper: 5); ``None`` disables it
    :param progress_bar: show a tqdm progress bar of the gradient steps
    :param print_estimate: time the first batches, then print ``BC: N batches, about M minutes``
    :param callback: called after every batch with the number of batches done and the policy being trained
    :return: the trained ``imitation.algorithms.bc.BC`` trainer (``trainer.policy`` is an SB3 ``ActorCriticPolicy``)
    """
    bc = import_bc()
    from imitation.util import logger as imitation_logger

    if n_batches is not None and n_batches < 1:
        raise ValueError(f"n_batches must be at least 1 (or None: sized to the demonstrations), got {n_batches}")
    episodes = to_episodes(demonstrations)
    check_episodes(episodes, observation_space, action_space)
    th.manual_seed(seed)
    policy = make_bc_policy(observation_space, action_space, features, net_arch, resnet_width, learning_rate)
    n_transitions = sum(len(ep) for ep in episodes)
    note = ""
    if n_batches is None:
        n_batches = bc_batches(n_transitions, batch_size)
        note = SIZED_NOTE.format(n_transitions=n_transitions)
    batch_size = min(batch_size, n_transitions)  # imitation refuses batches larger than the data
    on_gpu = get_device(device).type == "cuda"  # the images then stay on the GPU, shifted there
    batches = DemoBatches(episodes, observation_space, batch_size, augment=augment, pad=pad, seed=seed,
                          device=get_device(device) if on_gpu else None)  # fmt: skip
    trainer = bc.BC(
        observation_space=observation_space,
        action_space=action_space,
        rng=np.random.default_rng(seed),
        policy=policy,
        demonstrations=batches,
        batch_size=batch_size,
        optimizer_kwargs=dict(lr=learning_rate),
        device=device,
        custom_logger=imitation_logger.configure(format_strs=[] if verbose == 0 else ["stdout"]),
    )
    if max_grad_norm is not None:
        params = list(trainer.policy.parameters())

        def clip_gradients(*_: Any) -> None:
            th.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_grad_norm)

        trainer.optimizer.register_step_pre_hook(clip_gradients)
    # One bar of optimizer steps (imitation's own bar adds a line per epoch: noisy with a few demos)
    bar = tqdm(total=n_batches, unit="batch", desc="BC", disable=not progress_bar, dynamic_ncols=True)
    estimate = BCTimeEstimate(n_batches, note) if print_estimate else None
    done = [0]

    def on_batch_end() -> None:
        done[0] += 1
        bar.update()
        if estimate is not None:
            estimate()
        if callback is not None:
            callback(done[0], trainer.policy)

    try:
        with warnings.catch_warnings():
            # imitation 1.0.1 logs a tensor that requires grad; harmless
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
            # ... and its loss unwraps Dict observations twice (a warning per batch); harmless
            warnings.filterwarnings("ignore", message="trying to unwrap object of type")
            trainer.train(
                n_batches=n_batches,
                progress_bar=False,
                log_interval=max(n_batches // 10, 1),
                on_batch_end=on_batch_end,
            )
    finally:
        bar.close()
    trainer.policy.set_training_mode(False)
    return trainer


def _as_policy(source: Any, device: str = "auto") -> ActorCriticPolicy:
    """An SB3 policy from a BC trainer, a policy, or a file written by :func:`save_bc_policy`."""
    if isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            raise FileNotFoundError(f"BC policy file not found: {os.fspath(source)}")
        return ActorCriticPolicy.load(os.fspath(source), device=device)
    policy = getattr(source, "policy", source)
    if not isinstance(policy, ActorCriticPolicy):
        raise TypeError(
            f"Expected an imitation BC trainer, an SB3 ActorCriticPolicy or a policy file, got {type(source).__name__}"
        )
    return policy


def save_bc_policy(source: Any, path: Union[str, os.PathLike]) -> str:
    """
    Save a BC policy with SB3's ``policy.save``: the file is accepted by ``IBRL(il_policy=path)`` and
    :func:`sb3_ibrl.il.frozen.as_il_policy`, and loads with ``ActorCriticPolicy.load(path)``.

    :param source: an ``imitation`` BC trainer or an SB3 ``ActorCriticPolicy``
    :param path: file to write (parent folders are created; the name is used as is; a save that fails keeps the
        old file)
    :return: the path written
    """
    policy = _as_policy(source)
    path = os.fspath(path)
    with atomic_path(path) as temporary:
        policy.save(str(temporary))
    return path


def bc_action_error(source: Any, episodes: Sequence[Episode], max_samples: int = 4096) -> float:
    """
    Mean squared error between a BC policy's deterministic actions and the demo actions (no augmentation).

    :param source: an ``imitation`` BC trainer, an SB3 ``ActorCriticPolicy`` or a saved policy file
    :param episodes: the demonstrations
    :param max_samples: evaluate on at most this many transitions (evenly spaced)
    :return: the MSE, averaged over transitions and action dimensions
    """
    policy = _as_policy(source)
    batches = DemoBatches(episodes, policy.observation_space, batch_size=1, augment=False, shuffle=False)
    indices = np.linspace(0, batches.n_transitions - 1, min(max_samples, batches.n_transitions)).astype(np.int64)
    obs = obs_index(batches.obs, indices)
    predicted = np.concatenate(
        [policy.predict(obs_index(obs, slice(i, i + 256)), deterministic=True)[0] for i in range(0, len(indices), 256)]
    )
    return float(np.mean((predicted.reshape(len(indices), -1) - batches.acts[indices]) ** 2))


def evaluate_bc_policy(source: Any, env: gym.Env, n_episodes: int, seed: int = 0) -> tuple[float, float]:
    """
    Success rate of a BC policy's deterministic actions (``info["is_success"]`` at the end of the episode).

    :param source: an ``imitation`` BC trainer, an SB3 ``ActorCriticPolicy`` or a saved policy file
    :param env: the environment (with its time limit)
    :param n_episodes: number of episodes
    :param seed: seed of the first ``env.reset``
    :return: the success rate and the mean episode length
    """
    policy = _as_policy(source)
    return evaluate_policy_success(env, lambda obs: policy.predict(obs, deterministic=True)[0], n_episodes, seed=seed)
