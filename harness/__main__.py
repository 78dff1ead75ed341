"""``python -m harness`` is the ``harness`` command."""

from harness._cli import main

main()
