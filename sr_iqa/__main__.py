"""``python -m sr_iqa`` (also what ``accelerate launch -m sr_iqa`` runs)."""

from sr_iqa.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
