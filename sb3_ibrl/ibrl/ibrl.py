"""
Imitation Bootstrapped Reinforcement Learning (IBRL) on SB3's TD3 (Hu et al., 2024, Algorithm 1).
"""

from collections import deque
from typing import Any, ClassVar, Optional, TypeVar, Union

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule
from stable_baselines3.td3.td3 import TD3

from sb3_ibrl.common.spaces import has_image
from sb3_ibrl.data.demo_files import DemoSource, to_episodes
from sb3_ibrl.data.episodes import check_episodes
from sb3_ibrl.data.nstep_buffer import NStepBuffer
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer
from sb3_ibrl.ibrl.acceleration import CompileOption, UpdateFunctions, autocast, in_update_precision
from sb3_ibrl.ibrl.acting import ActingHooks
from sb3_ibrl.ibrl.defaults import resolve_paper_defaults
from sb3_ibrl.ibrl.il_actions import ILActions, ILCollectionHooks
from sb3_ibrl.ibrl.losses import actor_loss, critic_loss, td_target
from sb3_ibrl.ibrl.options import check_ibrl_options
from sb3_ibrl.ibrl.persistence import SaveLoadHooks
from sb3_ibrl.ibrl.policies import (
    CnnPolicy,
    EnsembleCritic,
    IBRLActor,
    IBRLPolicy,
    MlpPolicy,
    MultiInputPolicy,
)
from sb3_ibrl.il.frozen import ILPolicySource, as_il_policy
from sb3_ibrl.il.observations import find_split, split_env
from sb3_ibrl.networks.mlp import ema_update
from sb3_ibrl.networks.q_networks import Encoded

SelfIBRL = TypeVar("SelfIBRL", bound="IBRL")

# Default replay buffer sizes (transitions)
VECTOR_BUFFER_SIZE = 1_000_000
IMAGE_BUFFER_SIZE = 300_000


class IBRL(SaveLoadHooks, ActingHooks, ILCollectionHooks, TD3):
    """
    Imitation Bootstrapped Reinforcement Learning (IBRL), with a TD3 backbone.

    A frozen IL policy proposes an action next to the RL actor's, when acting (actor proposal) and in
    the TD target (bootstrap proposal); the higher-valued one wins. Defaults follow Table 2 of the
    paper, for the observations at hand where it differs: E = 5 critics and G = 5 critic updates per env step
    for states, E = 2 and G = 1 for images (or a Dict holding one); see :mod:`sb3_ibrl.ibrl.defaults`.

    Paper: https://arxiv.org/abs/2311.02198

    :param policy: the policy model to use (``MlpPolicy``)
    :param env: the environment to learn from (if registered in Gym, can be str)
    :param il_policy: the frozen IL policy: an ``imitation`` BC trainer, an SB3 policy, a torch module or
        callable mapping observation tensors to actions (env units), or a path to a saved SB3 policy / model.
        ``None`` runs TD3 with IBRL's network improvements (dropout actor, ensemble critics)
    :param demonstrations: demonstrations that prefill the replay buffer: a demo file path, imitation
        ``Trajectory`` / ``Transitions``, or ``Episode`` objects
    :param learning_rate: Adam learning rate (paper: 1e-4)
    :param buffer_size: size of the replay buffer: online transitions of all envs together, as in SB3 (demos are kept
        on top). ``None``: 1M for vector observations, 300K for images (about 7.7 GiB at 3 x 96 x 96: every frame is
        stored once, as uint8)
    :param learning_starts: env steps before learning starts (acting with the IL policy, or randomly, until then)
    :param batch_size: minibatch size
    :param tau: soft update coefficient of the target networks, ``1 - rho`` (paper: rho = 0.99)
    :param gamma: discount factor
    :param train_freq: update the model every ``train_freq`` steps
    :param gradient_steps: critic updates per ``train_freq`` steps of each env: with ``n_envs`` envs, ``learn()``
        does ``gradient_steps * n_envs`` updates per ``train()`` call, so that the updates per env step (and the
        learning curves over env steps) do not depend on ``n_envs`` (see ``scale_updates_with_n_envs``).
        ``None``: the paper's G, 5 for states, 1 for images
    :param action_noise: exploration noise added to the RL action before the actor proposal;
        ``None`` uses Gaussian noise of std ``exploration_std``
    :param exploration_std: std of the default exploration noise (paper: 0.1)
    :param replay_buffer_class: replay buffer class (``IBRLReplayBuffer`` by default)
    :param replay_buffer_kwargs: keyword arguments for the replay buffer
    :param optimize_memory_usage: not supported with n-step returns
    :param n_steps: n of the n-step return (authors' release: 3)
    :param policy_delay: critic updates per actor update, G; ``None``: the paper's, 5 for states, 1 for images
    :param target_policy_noise: std of the target policy smoothing noise (paper: 0.1)
    :param target_noise_clip: clip of the target policy smoothing noise, c (paper: 0.3)
    :param bootstrap_proposal: use the IL action in the TD target (False: the "actor proposal only" ablation)
    :param proposal_beta: ``None`` for the greedy actor proposal; else the inverse temperature of the soft
        one used while training (the authors' release uses 10 for state tasks)
    :param proposal_confidence: ``k >= 0``: the deterministic actor proposal (``predict(..., deterministic=True)``,
        evaluation) takes the RL action only where its advantage over the IL action, by the E critics, exceeds k
        standard deviations over them (:func:`~sb3_ibrl.ibrl.proposals.confident_proposal`); ``0``: the paper's greedy
        choice; ``float("inf")``: the IL action alone. It applies until the hybrid has matched its IL policy
        (``match_il_episodes``; see :mod:`sb3_ibrl.ibrl.acting`). Collecting data ignores it unless
        ``collect_confidently``. Default ``inf``: the deployed hybrid is the IL policy until it has matched it, then
        greedy (measured on state and image tasks: README, "The hybrid and its IL policy")
    :param collect_confidently: collect data as deployed: the actor proposal while training also keeps the IL action
        unless the critics agree (``proposal_confidence``) that the noisy RL action is better, until the hybrid has
        matched its IL policy (with k = inf the IL policy alone collects until then: use a finite k with it).
        ``False``: the paper's choice (greedy, or ``proposal_beta``'s soft one). Measured worse on Assembly and Lift
        from states (README, "State tasks with a pixel IL policy")
    :param bootstrap_beta: ``None``: bootstrap from the max of the two proposals (paper); else the inverse temperature
        of a soft choice between them (the release uses 10 for state tasks)
    :param proposal_critic: score the actor proposal with the ``"online"`` critics (paper) or ``"target"`` (release)
    :param target_actor_dropout: keep dropout on in the target actor while bootstrapping (as the release does)
    :param actor_q_reduction: ``"min"`` over all critics in the actor loss (paper, Alg. 1 line 19) or ``"mean"``
    :param warmup: how to act before ``learning_starts``: ``"il"`` (roll out the IL policy, as the release)
        or ``"random"``; without an IL policy it is always random
    :param il_warmup_episodes: with ``warmup="il"``, keep rolling out the IL policy alone, without updates, until this
        many episodes have ended (the release: 40 on Can, 50 on Square); these env steps count in ``num_timesteps``
    :param match_il_episodes: the deployed hybrid drops ``proposal_confidence`` (takes the greedy choice) while the
        mean return of its last ``match_il_episodes`` training episodes is at least that of the IL warm-up episodes;
        ``0``: never (always confident)
    :param match_il_confidence: how sure the match must be: the hybrid's mean return must exceed the IL warm-up's by
        this many standard errors of the difference (``0``: the means alone)
    :param demo_fraction: fraction of each batch from demos + successful online episodes (paper: 0.5 for Square)
    :param mixed_precision: ``None`` (float32), ``"bf16"``: bfloat16 autocast of the encoder and the Q-networks in
        the updates (parameters and optimizer state stay float32), or ``"tf32"``: float32 with CUDA matmuls and
        convolutions on TF32 tensor cores in the updates (set only inside them; no effect on a CPU)
    :param compile_updates: ``torch.compile`` the update functions (encoder, TD target, critic and actor losses):
        ``False``, ``True``, a mode (``"reduce-overhead"`` adds CUDA graphs) or a dict of ``torch.compile`` arguments
    :param il_obs_keys: keys of a Dict observation that only the IL policy reads (e.g. a wrist camera rendered by a
        state task, ``gym.make("Lift-state-v0", il_camera="robot0_eye_in_hand")``); the RL networks read the others (a
        key alone: its Box). The IL observations never enter the replay buffer (their IL actions are cached)
    :param cache_il_actions: compute the IL action of every stored transition's next observation once, when it is
        stored (and of the demos when they are added), and let the bootstrap proposal read it; ``False`` runs the IL
        policy on every sampled batch. Required for stateful IL policies
    :param scale_updates_with_n_envs: ``True``: ``gradient_steps`` counts updates per ``train_freq`` steps of each
        env (fixed updates per env step whatever ``n_envs``); ``False``: SB3's meaning (per ``train()`` call)
    :param stats_window_size: window size for the rollout logging
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments for the policy (``net_arch``, ``n_critics``, ``dropout``, ...);
        ``n_critics`` missing or ``None``: the paper's E, 5 for states, 2 for images
    :param verbose: verbosity level
    :param seed: seed for the pseudo random generators
    :param device: device (cpu, cuda, ...)
    :param _init_setup_model: whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: IBRLPolicy
    actor: IBRLActor
    actor_target: IBRLActor
    critic: EnsembleCritic  # type: ignore[assignment]
    critic_target: EnsembleCritic  # type: ignore[assignment]

    def __init__(
        self,
        policy: Union[str, type[IBRLPolicy]],
        env: Union[GymEnv, str],
        il_policy: Optional[ILPolicySource] = None,
        demonstrations: Optional[DemoSource] = None,
        learning_rate: Union[float, Schedule] = 1e-4,
        buffer_size: Optional[int] = None,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.01,
        gamma: float = 0.99,
        train_freq: Union[int, tuple[int, str]] = 1,
        gradient_steps: Optional[int] = None,
        action_noise: Optional[ActionNoise] = None,
        exploration_std: float = 0.1,
        replay_buffer_class: Optional[type[ReplayBuffer]] = None,
        replay_buffer_kwargs: Optional[dict[str, Any]] = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 3,
        policy_delay: Optional[int] = None,
        target_policy_noise: float = 0.1,
        target_noise_clip: float = 0.3,
        bootstrap_proposal: bool = True,
        proposal_beta: Optional[float] = None,
        proposal_confidence: float = float("inf"),
        collect_confidently: bool = False,
        bootstrap_beta: Optional[float] = None,
        proposal_critic: str = "online",
        target_actor_dropout: bool = True,
        actor_q_reduction: str = "min",
        warmup: str = "il",
        il_warmup_episodes: int = 0,
        match_il_episodes: int = 20,
        match_il_confidence: float = 0.0,
        demo_fraction: float = 0.0,
        mixed_precision: Optional[str] = None,
        compile_updates: CompileOption = False,
        scale_updates_with_n_envs: bool = True,
        cache_il_actions: bool = True,
        il_obs_keys: Optional[list[str]] = None,
        stats_window_size: int = 100,
        tensorboard_log: Optional[str] = None,
        policy_kwargs: Optional[dict[str, Any]] = None,
        verbose: int = 0,
        seed: Optional[int] = None,
        device: Union[th.device, str] = "auto",
        _init_setup_model: bool = True,
    ):
        if il_obs_keys is not None and env is not None:  # the RL networks learn from the other keys
            env = split_env(env, il_obs_keys, verbose)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,  # type: ignore[arg-type]  # resolved in _setup_model
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,  # type: ignore[arg-type]  # None: resolved in _setup_model
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_delay=policy_delay,  # type: ignore[arg-type]
            target_policy_noise=target_policy_noise,
            target_noise_clip=target_noise_clip,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.il_policy = il_policy
        self.demonstrations = demonstrations
        self.exploration_std = exploration_std
        self.bootstrap_proposal = bootstrap_proposal
        self.proposal_beta = proposal_beta
        self.proposal_confidence = proposal_confidence
        self.collect_confidently = collect_confidently
        self.bootstrap_beta = bootstrap_beta
        self.proposal_critic = proposal_critic
        self.target_actor_dropout = target_actor_dropout
        self.actor_q_reduction = actor_q_reduction
        self.warmup = warmup
        self.il_warmup_episodes = il_warmup_episodes
        self.match_il_episodes = match_il_episodes
        self.match_il_confidence = match_il_confidence
        self.demo_fraction = demo_fraction
        self.mixed_precision = mixed_precision
        self.compile_updates = compile_updates
        self.scale_updates_with_n_envs = scale_updates_with_n_envs
        self.cache_il_actions = cache_il_actions
        self.il_obs_keys = il_obs_keys
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        resolve_paper_defaults(self)  # options left to None: the paper's values for these observations
        check_ibrl_options(self)  # a clear ValueError for any bad option, before anything is built
        if self.replay_buffer_class is None:
            self.replay_buffer_class = IBRLReplayBuffer
        if issubclass(self.replay_buffer_class, IBRLReplayBuffer):
            self.replay_buffer_kwargs.update(n_steps=self.n_steps, gamma=self.gamma, demo_fraction=self.demo_fraction)
        elif self.demonstrations is not None or self.demo_fraction > 0:
            raise ValueError(
                "demonstrations and demo_fraction need an IBRLReplayBuffer (or a subclass) as replay_buffer_class"
            )
        if self.buffer_size is None:
            self.buffer_size = IMAGE_BUFFER_SIZE if has_image(self.observation_space) else VECTOR_BUFFER_SIZE
        n_steps, self.n_steps = self.n_steps, 1  # n-step returns are set up above, not by SB3's default buffer choice
        super()._setup_model()
        self.n_steps = n_steps
        if self.action_noise is None and self.exploration_std > 0:
            action_dim = self.action_space.shape[0]  # type: ignore[index]
            self.action_noise = NormalActionNoise(np.zeros(action_dim), self.exploration_std * np.ones(action_dim))

        split = find_split(self.env) if self.il_obs_keys else None
        il_space = self.observation_space if split is None else split.il_observation_space
        self.il_policy = as_il_policy(self.il_policy, il_space, self.action_space, self.device)
        self._il = None  # where the IL actions come from: cached once per env step, or computed per batch
        if self.il_policy is not None:
            cache = self.cache_il_actions and isinstance(self.replay_buffer, NStepBuffer)
            normalized = self._vec_normalize_env is not None and self._vec_normalize_env.norm_obs
            self._il = ILActions(self.il_policy, il_space, self._obs_to_tensor, cache, normalized, split)
        self.policy.il_policy = self.il_policy
        self.policy.proposal_beta = self.proposal_beta
        self._setup_returns()  # the episode returns that tell when the hybrid has matched the IL policy
        self.policy.proposal_critic = self.proposal_critic
        if self.demonstrations is not None:
            self.add_demonstrations(self.demonstrations)
            self.demonstrations = None  # now in the replay buffer (kept by save_replay_buffer)
        self._il_choices: deque[bool] = deque(maxlen=1000)
        # The update functions, compiled when compile_updates asks for it (rebuilt after loading)
        self._fns = UpdateFunctions.build(
            self.compile_updates, self.policy.encode, td_target, critic_loss, self._actor_objective
        )
        self._updates_per_train_call = 1  # set by collect_rollouts to n_envs (scale_updates_with_n_envs)

    def add_demonstrations(self, demonstrations: DemoSource) -> int:
        """
        Add demonstrations to the replay buffer, where they stay for the whole run.

        :param demonstrations: a demo file path, imitation ``Trajectory`` / ``Transitions``, or ``Episode`` objects
        :return: the number of transitions added
        """
        if not isinstance(self.replay_buffer, IBRLReplayBuffer):
            raise ValueError("Demonstrations need an IBRLReplayBuffer")
        episodes, il_actions = to_episodes(demonstrations), None
        if self._il is not None:  # the RL part (with il_obs_keys) and the IL actions to cache
            episodes, il_actions = self._il.split_demos(episodes)
        check_episodes(episodes, self.observation_space, self.action_space)  # type: ignore[arg-type]
        low, high = self.action_space.low, self.action_space.high  # type: ignore[union-attr]

        def scale(actions: np.ndarray) -> np.ndarray:  # env units -> [-1, 1], as the buffer stores actions
            return self.policy.scale_action(np.clip(actions, low, high))

        self.replay_buffer.add_demonstrations(episodes, scale, il_actions)
        return sum(len(ep) for ep in episodes)

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> Any:
        rollout = super().collect_rollouts(*args, **kwargs)
        # The train() call that learn() makes next: gradient_steps updates per train_freq steps of each env
        if self.scale_updates_with_n_envs and self.gradient_steps > 0:
            self._updates_per_train_call = self.n_envs
        return rollout

    @in_update_precision  # TF32: the forward and backward passes and the optimizer steps
    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        gradient_steps *= self._updates_per_train_call
        self._updates_per_train_call = 1
        if self._il_warmup_pending():  # no update until the IL warm-up episodes are collected
            return
        self.policy.set_training_mode(True)
        self.actor_target.train(self.target_actor_dropout)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        il_policy = self.il_policy if self.bootstrap_proposal else None

        stats: dict[str, list[th.Tensor]] = {"critic": [], "actor": [], "q": [], "target": [], "bootstrap_il": []}
        for _ in range(gradient_steps):
            self._n_updates += 1
            if self._fns.compiled:
                th.compiler.cudagraph_mark_step_begin()  # CUDA graphs ("reduce-overhead"): a new step's outputs
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else self.gamma
            with autocast(self.device, self.mixed_precision):
                # Random shift of images for the critic update; next observations through the online encoder
                observations = self.policy.augment(data.observations)
                with th.no_grad():
                    next_encoded = self._fns.encode(self.policy.augment(data.next_observations))
                    next_il_action = None if il_policy is None else self._il.for_bootstrap(data)  # type: ignore[union-attr]
                target_q, used_il = self._fns.td_target(
                    next_encoded, next_il_action, data.rewards, data.dones, discounts, self.actor_target, self.critic_target,
                    self.target_policy_noise, self.target_noise_clip, self.bootstrap_beta,
                )  # fmt: skip
                encoded = self._fns.encode(observations)
                loss, current_q = self._fns.critic_loss(self.critic, encoded, data.actions, target_q)
            self.critic.optimizer.zero_grad()
            loss.backward()
            self.critic.optimizer.step()
            ema_update(self.critic.target_parameters(), self.critic_target.target_parameters(), self.tau)  # Alg. 1 line 17
            # Kept on the device: one synchronization per train() call, not per update
            stats["critic"].append(loss.detach().clone())  # a copy: CUDA graphs reuse their outputs' memory
            stats["q"].append(current_q.detach().float().mean())
            stats["target"].append(target_q.detach().float().mean())
            stats["bootstrap_il"].append(used_il.float().mean())

            if self._n_updates % self.policy_delay == 0:  # after G critic updates, one actor update (Alg. 1 line 19)
                with autocast(self.device, self.mixed_precision):
                    if not self.policy.augment_actor and observations is not data.observations:
                        with th.no_grad():
                            encoded = self._fns.encode(data.observations)
                    loss = self._fns.actor_objective(encoded, data)
                self.actor.optimizer.zero_grad()
                loss.backward()
                self.actor.optimizer.step()
                ema_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)  # Alg. 1 line 20
                stats["actor"].append(loss.detach().clone())

        names = [name for name, values in stats.items() if values]  # one transfer for all (each .item() waits for the GPU)
        means = dict(zip(names, th.stack([th.stack(stats[name]).float().mean() for name in names]).tolist()))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/critic_loss", means["critic"])
        if "actor" in means:
            self.logger.record("train/actor_loss", means["actor"])
        self.logger.record("train/q_values", means["q"])
        self.logger.record("train/target_q_values", means["target"])
        if il_policy is not None:
            self.logger.record("train/bootstrap_il_fraction", means["bootstrap_il"])
        if self._il_choices:
            self.logger.record("rollout/il_action_fraction", self.il_action_fraction)

    def _actor_objective(self, encoded: Encoded, data: ReplayBufferSamples) -> th.Tensor:
        """The actor loss of one update (Alg. 1 line 19); baselines that regularize the actor override it."""
        return actor_loss(self.actor, self.critic, encoded, self.actor_q_reduction)

    def learn(  # type: ignore[override]
        self: SelfIBRL,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "IBRL",
        **kwargs: Any,
    ) -> SelfIBRL:
        """SB3's ``learn`` (``reset_num_timesteps``, ``progress_bar``), logging under ``IBRL``."""
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        # The IL policy is pickled with the model; demos live in the replay buffer; the update functions are rebuilt
        excluded = ["demonstrations", "_il_choices", "_fns", "_updates_per_train_call", "_il", "_running"]
        return [*super()._excluded_save_params(), *excluded]
