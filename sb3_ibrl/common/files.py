"""
Writing a file without losing the old one: every file sb3-ibrl saves (models, policies, replay buffers, demo files,
BC policies, benchmark results) is written beside its target and then renamed onto it, so a save that fails part-way
(an error in the middle, a full disk, an interrupt) leaves the previous file as it was, and a reader never sees half
a file.
"""

import contextlib
import os
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any, Union


@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike]) -> Iterator[pathlib.Path]:
    """
    A temporary path to write ``path`` through. It is in the same folder (so that the final rename is atomic) and
    ends with the same suffix (so that writers which append a missing suffix, e.g. numpy's ``.npz`` or SB3's
    ``.zip``, write to it as it is). When the ``with`` block ends without an error, the temporary file is moved onto
    ``path`` (``os.replace``); otherwise it is removed and ``path`` keeps its old content (or stays absent).

    :param path: the file to write (its folder is created)
    :return: the temporary path to write to, inside the ``with`` block
    """
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # pid and a random part: two processes (benchmark workers) may write the same target at once
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield temporary
        if not temporary.exists():
            raise RuntimeError(f"Nothing was written for {target}: the old file is kept")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def save_figure(figure: Any, path: Union[str, os.PathLike], **savefig_kwargs: Any) -> str:
    """
    Save a matplotlib figure through :func:`atomic_path` (the format from ``path``'s suffix), then close it.

    :param figure: a ``matplotlib.figure.Figure``
    :param path: the image file to write
    :param savefig_kwargs: passed to ``Figure.savefig`` (e.g. ``dpi``)
    :return: ``path``, as a string
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, **savefig_kwargs)
    finally:
        plt.close(figure)
    return os.fspath(path)
