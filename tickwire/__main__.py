"""``python -m tickwire`` = the ``tickwire`` command."""

from tickwire.cli import main

main()
