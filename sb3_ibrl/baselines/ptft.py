"""
Pt-Ft (paper Appendix A): pretrain the actor with BC on the demos, then fine-tune with a BC-regularized TD3 actor loss

    max_pi  E_{s ~ D_r} Q(s, pi(s))  -  alpha * lambda(pi) * E_{(s, a) ~ D_d} ||a - pi(s)||^2          (Eq. 3)

with a fixed ``lambda = 1`` or the soft-Q-filter schedule (Eq. 4): the fraction of replay states where the
pretrained policy's action has a higher Q-value than the current actor's. IBRL's networks, no IL policy.
"""

import copy
from typing import Any, Optional

import numpy as np
import torch as th
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_ibrl.data.demo_files import DemoSource
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer
from sb3_ibrl.ibrl.ibrl import IBRL
from sb3_ibrl.ibrl.losses import actor_loss
from sb3_ibrl.ibrl.policies import EnsembleCritic, IBRLActor
from sb3_ibrl.networks.q_networks import Encoded

BC_SCHEDULES = ("fixed", "soft_q_filter")


def bc_regularizer(actor: IBRLActor, encoded_demos: Encoded, demo_actions: th.Tensor, detach: bool = True) -> th.Tensor:
    """
    The BC term of Eq. 3: ``E ||a - pi(s)||^2`` over demonstration pairs (squared norm over action dimensions).
    Also the loss of the BC pretraining.

    :param actor: the actor
    :param encoded_demos: encoded demonstration observations (``batch`` rows)
    :param demo_actions: demonstrated actions in ``[-1, 1]`` ``(batch, action_dim)``
    :param detach: stop the gradients at the features (``False`` trains the encoder too, when pretraining)
    :return: the scalar loss
    """
    return ((actor.act(encoded_demos, detach=detach) - demo_actions) ** 2).sum(dim=-1).mean()


def soft_q_filter(critic: EnsembleCritic, encoded: Encoded, bc_action: th.Tensor, rl_action: th.Tensor) -> th.Tensor:
    """
    The soft-Q-filter weight of Eq. 4: fraction of states where ``Q(s, pi_BC(s)) > Q(s, pi_RL(s))``.

    Q is the min over the E critics.

    :param critic: the (online) critics
    :param encoded: encoded replay observations (``batch`` rows)
    :param bc_action: the pretrained policy's actions ``(batch, action_dim)``
    :param rl_action: the current actor's actions ``(batch, action_dim)``
    :return: the weight lambda, a scalar in ``[0, 1]``
    """
    with th.no_grad():
        q_bc = critic.q_values(encoded, bc_action).min(dim=0).values  # (batch, 1)
        q_rl = critic.q_values(encoded, rl_action).min(dim=0).values  # (batch, 1)
        return (q_bc > q_rl).float().mean()


class PtFt(IBRL):
    """
    Pretrain with BC, fine-tune with BC-regularized TD3 (paper Appendix A), on IBRL's networks.

    :meth:`learn` first trains the actor (and, for images, the encoder) on the demonstrations for
    ``pretrain_steps`` batches, unless it has done so already; the pretrained actor is kept frozen as
    ``pi_BC`` for the soft Q filter. The actor acts from the first step (no random warm-up). Takes every
    argument of :class:`~sb3_ibrl.IBRL` except ``il_policy``, ``bootstrap_proposal`` and ``warmup``.

    :param policy: the policy model to use
    :param env: the environment to learn from
    :param demonstrations: the demonstrations (required): the BC data and the buffer prefill
    :param bc_weight: alpha of Eq. 3
    :param bc_schedule: ``"fixed"`` (lambda = 1) or ``"soft_q_filter"`` (Eq. 4)
    :param pretrain_steps: BC batches before RL (0: no pretraining)
    :param pretrain_learning_rate: Adam learning rate of the pretraining (default: ``learning_rate``)
    :param kwargs: other arguments of :class:`~sb3_ibrl.IBRL`
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        demonstrations: Optional[DemoSource] = None,
        bc_weight: float = 1.0,
        bc_schedule: str = "fixed",
        pretrain_steps: int = 10_000,
        pretrain_learning_rate: Optional[float] = None,
        **kwargs: Any,
    ):
        for name in ("il_policy", "bootstrap_proposal", "warmup"):
            if name in kwargs:
                raise TypeError(f"PtFt has no IL policy: {name!r} is not an option (use IBRL for it)")
        _init_setup_model = kwargs.pop("_init_setup_model", True)
        super().__init__(policy, env, il_policy=None, demonstrations=demonstrations, _init_setup_model=False, **kwargs)
        self.bc_weight = bc_weight
        self.bc_schedule = bc_schedule
        self.pretrain_steps = pretrain_steps
        self.pretrain_learning_rate = pretrain_learning_rate
        self.bc_actor: Optional[IBRLActor] = None  # the pretrained actor, frozen (set by pretrain)
        self.pretrained = False
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        if self.bc_schedule not in BC_SCHEDULES:
            raise ValueError(f"Unknown bc_schedule={self.bc_schedule!r}: expected one of {BC_SCHEDULES}")
        if self.bc_weight < 0 or self.pretrain_steps < 0:
            raise ValueError(f"bc_weight and pretrain_steps must be >= 0, got {self.bc_weight} and {self.pretrain_steps}")
        super()._setup_model()

    def _demo_batch(self, batch_size: int) -> ReplayBufferSamples:
        buffer = self.replay_buffer
        if not isinstance(buffer, IBRLReplayBuffer) or buffer.demos is None:
            raise ValueError("PtFt learns from demonstrations: pass demonstrations= (or call add_demonstrations)")
        return buffer.demos.sample(batch_size, env=self._vec_normalize_env)

    def pretrain(self, n_steps: Optional[int] = None) -> list[float]:
        """
        Behaviour cloning of the actor (and the encoder, for images) on the demonstrations, MSE on ``[-1, 1]`` actions.
        The target actor is set to the result, which is also kept frozen as ``bc_actor`` (pi_BC of the soft Q filter).

        :param n_steps: BC batches (default: ``pretrain_steps``)
        :return: the loss of every batch
        """
        n_steps = self.pretrain_steps if n_steps is None else n_steps
        encoder = self.policy.critic.encoder
        params = [*self.actor.parameters(), *encoder.parameters()]
        optimizer = th.optim.Adam(params, lr=self.pretrain_learning_rate or self.lr_schedule(1.0))
        self.policy.set_training_mode(True)
        losses = []
        for _ in range(n_steps):
            data = self._demo_batch(self.batch_size)
            encoded = self.policy.encode(self.policy.augment(data.observations))
            loss = bc_regularizer(self.actor, encoded, data.actions, detach=False)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        self.policy.set_training_mode(False)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.bc_actor = copy.deepcopy(self.actor)  # with its own copy of the encoder, as pretrained
        self.bc_actor.requires_grad_(False).eval()
        self.pretrained = True
        if losses and self.verbose >= 1:
            print(f"Pt-Ft: BC pretraining, {len(losses)} batches, final loss {np.mean(losses[-100:]):.4f}")
        return losses

    def learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> "PtFt":  # type: ignore[override]
        if not self.pretrained:
            self.pretrain()
        return super().learn(total_timesteps, *args, **kwargs)

    def _sample_action(
        self, learning_starts: int, action_noise: Optional[ActionNoise] = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        # The pretrained actor acts from the first step: no random warm-up
        return super()._sample_action(0, action_noise, n_envs)

    def _actor_objective(self, encoded: Encoded, data: ReplayBufferSamples) -> th.Tensor:
        rl_loss = actor_loss(self.actor, self.critic, encoded, self.actor_q_reduction)
        if self.bc_weight == 0:
            return rl_loss
        if self.bc_schedule == "fixed" or self.bc_actor is None:
            weight = th.ones((), device=self.device)
        else:
            with th.no_grad():
                bc_action = self.bc_actor(data.observations)
            weight = soft_q_filter(self.critic, encoded.detach(), bc_action, self.actor.act(encoded).detach())
        demos = self._demo_batch(self.batch_size)
        with th.no_grad():
            encoded_demos = self.policy.encode(demos.observations)
        bc_loss = bc_regularizer(self.actor, encoded_demos, demos.actions)
        self.logger.record("train/bc_loss", bc_loss.item())
        self.logger.record("train/bc_lambda", weight.item())
        return rl_loss + self.bc_weight * weight * bc_loss
