"""
How long behaviour cloning trains when the user does not say: a number of batches sized to the demonstrations, and
a printed estimate of the time it takes.

The paper trains BC for 100K batches of 256 whatever the data. On a few demos that is a waste: CoffeePush's 3
scripted demos hold 82 transitions, so 100K batches are 100K passes over the same 82 samples (about 50 minutes on a
CPU before the first RL step). :func:`bc_batches` counts passes (epochs) over the demo transitions instead, with a
floor, so that a few short demos still get enough gradient steps to fit, and a cap (the paper's 100K batches).
:class:`BCTimeEstimate` times the first batches and prints ``BC: N batches, about M minutes``.
"""

import math
import time
from typing import Callable, Optional

from tqdm.auto import tqdm

# Defaults of bc_batches (measured on the scripted Meta-World state demos: benchmarks/bc_batches.py)
BC_EPOCHS = 1000  # passes over the demo transitions
BC_MIN_BATCHES = 2000  # a few short demos (one batch per pass) still get this many gradient steps
BC_MAX_BATCHES = 100_000  # the paper's count
SIZED_NOTE = (
    f"(sized to the data: {BC_EPOCHS} passes over {{n_transitions}} demo transitions, "
    f"within {BC_MIN_BATCHES}-{BC_MAX_BATCHES}; --n-batches / n_batches= to choose)"
)


def bc_batches(
    n_transitions: int,
    batch_size: int = 256,
    epochs: int = BC_EPOCHS,
    min_batches: int = BC_MIN_BATCHES,
    max_batches: int = BC_MAX_BATCHES,
) -> int:
    """
    The number of BC batches for a demo set: ``epochs`` passes over its transitions, within
    ``[min_batches, max_batches]``.

    E.g. with the defaults and batches of 256: 82 transitions (3 CoffeePush demos) -> 2000 batches (the floor: 1000
    passes are 1000 batches of 82); 1,500 transitions (10 Can demos) -> 5,860; 7,500 (50 Square demos) -> 29,297;
    from 25,600 transitions on -> 100,000 (the cap).

    :param n_transitions: transitions in the demonstrations
    :param batch_size: transitions per batch (capped at ``n_transitions``, as BC caps it)
    :param epochs: passes over the transitions
    :param min_batches: the fewest batches
    :param max_batches: the most batches
    :return: the number of batches
    """
    if n_transitions < 1:
        raise ValueError(f"The demonstrations hold no transition (n_transitions={n_transitions}): BC has nothing to fit")
    for name, value in (("batch_size", batch_size), ("epochs", epochs), ("min_batches", min_batches)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if max_batches < min_batches:
        raise ValueError(f"max_batches ({max_batches}) must be at least min_batches ({min_batches})")
    batches_per_epoch = n_transitions / min(batch_size, n_transitions)
    return int(min(max(math.ceil(epochs * batches_per_epoch), min_batches), max_batches))


def format_minutes(seconds: float) -> str:
    """``"about 2.5 minutes"``, ``"about 48 minutes"`` (1 decimal below 10 minutes; at least 0.1)."""
    minutes = seconds / 60.0
    return f"about {max(minutes, 0.1):.1f} minutes" if minutes < 10 else f"about {minutes:.0f} minutes"


class BCTimeEstimate:
    """
    Called after every BC batch: once the first batches are timed, prints ``BC: N batches, about M minutes`` (the
    whole run, from the start of training).

    The first batch is not timed (it pays one-off costs, e.g. the first allocations); then batches are timed for
    ``min_seconds`` or ``max_timed`` batches, whichever comes first.

    :param n_batches: the batches of the run
    :param note: added after the batch count, e.g. ``"(1000 passes over 82 demo transitions)"``
    :param min_seconds: time batches for at least this long ...
    :param max_timed: ... or this many batches
    :param write: prints a line (default: ``tqdm.write``, which keeps a progress bar intact)
    """

    def __init__(
        self,
        n_batches: int,
        note: str = "",
        min_seconds: float = 2.0,
        max_timed: int = 50,
        write: Optional[Callable[[str], None]] = None,
    ):
        self.n_batches, self.note = n_batches, note
        self.min_seconds, self.max_timed = min_seconds, max_timed
        self.write = write or (lambda line: tqdm.write(line))
        self.start = time.perf_counter()
        self.done = 0
        self.timing_start: Optional[float] = None
        self.seconds: Optional[float] = None  # the estimate, once made

    @property
    def line(self) -> str:
        """The estimate line (once :attr:`seconds` is known)."""
        note = f" {self.note}" if self.note else ""
        per_batch = ""
        if self.timing_start is not None and self.done > 1:
            per_batch = f" ({1000 * self._per_batch:.0f} ms per batch, timed on {self.done - 1})"
        return f"BC: {self.n_batches} batches{note}, {format_minutes(self.seconds or 0.0)}{per_batch}"

    def __call__(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.seconds is not None:
            return
        if self.timing_start is None:
            self.timing_start = now
            if self.n_batches > 1:
                return
        timed = self.done - 1
        if timed >= self.max_timed or now - self.timing_start >= self.min_seconds or self.done >= self.n_batches:
            self._per_batch = (now - self.timing_start) / max(timed, 1) if timed else now - self.start
            self.seconds = (now - self.start) + self._per_batch * (self.n_batches - self.done)
            self.write(self.line)
