"""
The benchmark runner: methods x tasks x seeds, CSV, resumable; plots and tables. Same as ``python -m sb3_ibrl.benchmark``.

    python benchmarks/run.py run --tasks CoffeePush-state-v0 --methods ibrl rlpd+ bc --seeds 0 1 2 --profile cpu \\
        --steps 15000 --eval-every 2500 --workers 2 --out bench
    python benchmarks/run.py report --out bench
"""

import sys

from sb3_ibrl.benchmark.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
