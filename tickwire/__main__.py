"""``python -m tickwire`` = the ``tickwire`` command (an entry point: it sits above every layer)."""

from deploy.cli import main

main()
