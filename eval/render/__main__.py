"""``python -m eval.render`` (eval/render/cli.py)."""

from eval.render.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
