"""``python -m training.benchmark``: see ``training/benchmark/cli.py``."""

from training.benchmark.cli import main

main()
