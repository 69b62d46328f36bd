"""
How long behaviour cloning trains when the user does not say: a number of batches sized to the demonstrations, and
a printed estimate of the time it takes.

The paper trains BC for 100K batches of 256 whatever the data. On a few demos that is mostly repetition: CoffeePush's
3 scripted demos hold 82 transitions, so 100K batches are 100K passes over the same 82 samples (estimated at 14
minutes on a shared 2-core machine at 8 ms per batch; issue 12 reports about 50), all before the first RL step.
:func:`bc_batches` counts passes (epochs) over the demo transitions instead, with a floor, so that a few short demos
still get the gradient steps they need to fit, and a cap (the paper's 100K).

The floor is measured (``benchmarks/bc_batches.py``, ``benchmarks/results/bc_batches.json``): on the 3 scripted demos
of 4 Meta-World state tasks (82-167 transitions, one batch per pass), the mean success of the BC policy over 3 seeds
was 0.27 after 2K batches, 0.40 after 4K, 0.44 after 8K, 0.46 after 16K and 0.47 after 32K (BoxClose still rose,
CoffeePush peaked at 2K): 8K-16K batches come within 0.03 of 32K at a quarter to a half of its time, hence 10K.
Above the floor the count grows with the data (1000 passes), so that larger demo sets (Square's 50) are not cut short.
:class:`BCTimeEstimate` times the first batches and prints ``BC: N batches, about M minutes``.
"""

import math
import time
from typing import Callable, Optional

from tqdm.auto import tqdm

# Defaults of bc_batches (the floor measured on scripted Meta-World state demos, see above)
BC_EPOCHS = 1000  # passes over the demo transitions
BC_MIN_BATCHES = 10_000  # a few short demos (one batch per pass) still get this many gradient steps
BC_MAX_BATCHES = 100_000  # the paper's count
SIZED_NOTE = (
    f"(sized to the data: {BC_EPOCHS} passes over {{n_transitions}} demo transitions, at least {BC_MIN_BATCHES}, "
    f"at most {BC_MAX_BATCHES}; n_batches= to choose)"
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

    E.g. with the defaults and batches of 256: 82 transitions (3 CoffeePush demos) -> 10,000 batches (the floor: 1000
    passes are 1000 batches of 82); 1,340 transitions (10 scripted Can demos) -> 10,000 (1000 passes are 5,235);
    7,500 (about 50 Square demos) -> 29,297; from 25,600 transitions on -> 100,000 (the cap).

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
    :param min_seconds: time batches until this many seconds have passed ...
    :param max_timed: ... or this many batches are timed, whichever comes first
    :param write: prints a line (default: ``tqdm.write``, which keeps a progress bar intact)
    """

    def __init__(
        self,
        n_batches: int,
        note: str = "",
        min_seconds: float = 5.0,
        max_timed: int = 200,
        write: Optional[Callable[[str], None]] = None,
    ):
        self.n_batches, self.note = n_batches, note
        self.min_seconds, self.max_timed = min_seconds, max_timed
        self.write = write or (lambda line: tqdm.write(line))
        self.start = time.perf_counter()
        self.done = 0
        self.timing_start: Optional[float] = None
        self.timed = 0  # batches timed
        self.per_batch: Optional[float] = None  # seconds per batch, once timed
        self.seconds: Optional[float] = None  # the estimate of the whole run, once made

    @property
    def line(self) -> str:
        """The estimate line (once :attr:`seconds` is known)."""
        note = f" {self.note}" if self.note else ""
        timing = f" ({1000 * self.per_batch:.0f} ms per batch, timed on {self.timed})" if self.timed else ""
        return f"BC: {self.n_batches} batches{note}, {format_minutes(self.seconds or 0.0)}{timing}"

    def __call__(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.seconds is not None:
            return
        if self.timing_start is None:  # the end of the first batch: timing starts
            self.timing_start = now
        self.timed = self.done - 1
        if self.timed >= self.max_timed or now - self.timing_start >= self.min_seconds or self.done >= self.n_batches:
            self.per_batch = (now - self.timing_start) / self.timed if self.timed else now - self.start
            self.seconds = (now - self.start) + self.per_batch * (self.n_batches - self.done)
            self.write(self.line)
