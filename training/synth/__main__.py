"""``python -m training.synth`` (training/synth/cli.py)."""

from training.synth.cli import main

# The guard matters: --workers > 1 spawns processes that import this module again as __mp_main__.
if __name__ == "__main__":
    raise SystemExit(main())
