"""
Speed options of the updates: bf16 autocast or TF32 tensor cores, and ``torch.compile`` of the update functions
(LeanRL's recipe: compile the pure update functions, and use CUDA graphs with ``mode="reduce-overhead"``).

Both are plain values, usable from YAML: ``mixed_precision=None | "bf16" | "tf32"``, ``compile_updates=False | True | "<mode>"
| {torch.compile keyword arguments}``.
"""

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch as th

MIXED_PRECISION = (None, "bf16", "tf32")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CompileOption = Union[bool, str, dict[str, Any]]


def check_mixed_precision(mixed_precision: Optional[str]) -> None:
    """Raise a ``ValueError`` naming the choices for an unknown ``mixed_precision``."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"Unknown mixed_precision={mixed_precision!r}: expected one of {MIXED_PRECISION}")


def autocast(device: th.device, mixed_precision: Optional[str]) -> contextlib.AbstractContextManager:
    """
    The context of the forward passes of an update: with ``"bf16"``, bf16 autocast (matmuls and convolutions in
    bfloat16, reductions and losses in float32; the parameters, gradients and optimizer state stay float32; the
    backward pass runs outside it, as torch advises); otherwise nothing (TF32: :func:`update_precision`).

    :param device: the model's device
    :param mixed_precision: ``None``, ``"bf16"`` or ``"tf32"``
    """
    if mixed_precision == "bf16":
        return th.autocast(device_type=device.type, dtype=th.bfloat16)
    return contextlib.nullcontext()


def update_precision(mixed_precision: Optional[str]) -> contextlib.AbstractContextManager:
    """
    The context of a whole update, forward and backward passes and optimizer steps: with ``"tf32"``, float32 tensors
    with CUDA matmuls and convolutions on TF32 tensor cores (a 10-bit mantissa in the products, float32 sums); otherwise
    nothing. The backward pass holds about two thirds of an update's matmuls: it must run inside too.

    :param mixed_precision: ``None``, ``"bf16"`` or ``"tf32"``
    """
    return allow_tf32() if mixed_precision == "tf32" else contextlib.nullcontext()


def in_update_precision(train: Callable[..., Any]) -> Callable[..., Any]:
    """Run a model's ``train`` method, whole, in :func:`update_precision` of its ``mixed_precision``."""

    @functools.wraps(train)
    def wrapped(model: Any, *args: Any, **kwargs: Any) -> Any:
        with update_precision(model.mixed_precision):
            return train(model, *args, **kwargs)

    return wrapped


@contextlib.contextmanager
def allow_tf32() -> Iterator[None]:
    """
    TF32 tensor cores for CUDA matmuls and cuDNN convolutions inside the context only; the process's own settings
    (off for matmuls by default in torch) come back after it, so the model never changes them for the user's code.
    No effect on a CPU.
    """
    saved = th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32
    th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32 = True, True
    try:
        yield
    finally:
        th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32 = saved


def compile_kwargs(option: CompileOption) -> Optional[dict[str, Any]]:
    """
    Keyword arguments of ``torch.compile`` for a ``compile_updates`` option, or ``None`` when it is off.

    :param option: ``False`` (off), ``True`` (default mode), a mode name (``"reduce-overhead"``: CUDA graphs), or a
        dict of ``torch.compile`` keyword arguments (e.g. ``{"backend": "aot_eager"}``)
    """
    if option is False or option is None:
        return None
    if option is True:
        return {}
    if isinstance(option, str):
        if option not in COMPILE_MODES:
            raise ValueError(f"Unknown compile_updates mode {option!r}: expected a bool, a dict or one of {COMPILE_MODES}")
        return {"mode": option}
    if isinstance(option, dict):
        return dict(option)
    raise TypeError(f"compile_updates must be a bool, a mode name or a dict of torch.compile arguments, got {option!r}")


def maybe_compile(fn: Callable, kwargs: Optional[dict[str, Any]]) -> Callable:
    """``torch.compile(fn, **kwargs)``, or ``fn`` itself when ``kwargs`` is ``None``."""
    return fn if kwargs is None else th.compile(fn, **kwargs)


@dataclass
class UpdateFunctions:
    """The functions of one update, compiled or not: encoder, TD target, critic loss and actor objective."""

    encode: Callable
    td_target: Callable
    critic_loss: Callable
    actor_objective: Callable
    compiled: bool

    @classmethod
    def build(
        cls, option: CompileOption, encode: Callable, td_target: Callable, critic_loss: Callable, actor_objective: Callable
    ) -> "UpdateFunctions":
        """
        :param option: the ``compile_updates`` option
        :param encode: the policy's encoder call
        :param td_target: the TD target with the bootstrap proposal
        :param critic_loss: the critic loss
        :param actor_objective: the algorithm's actor loss (baselines override it)
        """
        kwargs = compile_kwargs(option)
        fns = [maybe_compile(fn, kwargs) for fn in (encode, td_target, critic_loss, actor_objective)]
        return cls(*fns, compiled=kwargs is not None)
