"""Every error tickwire raises on purpose derives from :class:`TickwireError`.

    TickwireError
    └── (each room's errors; the full tree is drawn here as they are added)

Library code raises these; only the command line (``deploy/cli.py``) turns them into exit codes.
"""

from __future__ import annotations


class TickwireError(Exception):
    """The root of tickwire's own errors: its message is one line a user can act on."""
