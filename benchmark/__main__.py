"""``python -m benchmark``: see benchmark/bench.py."""

import sys

from benchmark.bench import main

sys.exit(main())
