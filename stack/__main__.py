"""``python -m stack ...`` is the ``modelpulse`` command (``python -m stack up`` is what ``make up`` runs)."""

from stack.cli import main

main()
