"""``python -m lfsreg``."""

from .cli import main

main()
