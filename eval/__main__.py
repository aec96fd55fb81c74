"""``python -m eval``: evaluate checkpoints, exported models and classical renderers on a split
(see ``eval/evaluate.py``)."""

from eval.evaluate import main

raise SystemExit(main())
