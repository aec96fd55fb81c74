"""``python -m training.data``: see ``training/data/cli.py``."""

from training.data.cli import main

raise SystemExit(main())
