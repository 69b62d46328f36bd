"""
Train with rl-zoo3, IBRL registered: ``python -m sb3_ibrl.train --env Lift-state-v0`` (``--algo ibrl`` is implied).

The arguments are those of ``python -m rl_zoo3.train`` (``--help``); the default hyperparameters file is sb3-ibrl's
``hyperparams/ibrl.yml``. Unlike ``python -m rl_zoo3.train --algo ibrl``, this works without the start-up hook
that sb3-ibrl installs (e.g. when ``SB3_IBRL_NO_ZOO_HOOK`` is set).
"""

import sys
from collections.abc import Sequence
from typing import Optional

ZOO_INSTALL_HINT = 'The rl-zoo3 integration needs rl-zoo3: pip install "sb3_ibrl[zoo]"'


def with_default_algo(argv: Sequence[str]) -> list[str]:
    """
    The command line, with ``--algo ibrl`` added when no algorithm is given.

    :param argv: arguments of ``rl_zoo3.train``
    :return: the arguments to parse
    """
    argv = list(argv)
    if any(arg == "--algo" or arg.startswith("--algo=") for arg in argv):
        return argv
    return ["--algo", "ibrl", *argv]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """
    Entry point of ``python -m sb3_ibrl.train``.

    :param argv: arguments of ``rl_zoo3.train`` (default: ``sys.argv[1:]``)
    """
    try:
        import rl_zoo3.train
    except ImportError as error:
        raise SystemExit(f"{ZOO_INSTALL_HINT} ({error})") from error
    from sb3_ibrl.zoo import register

    register()
    # rl-zoo3's train() parses sys.argv
    sys.argv = [sys.argv[0], *with_default_algo(sys.argv[1:] if argv is None else argv)]
    rl_zoo3.train.train()


if __name__ == "__main__":
    main()
