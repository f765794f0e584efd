"""Every error tickwire raises on purpose derives from :class:`TickwireError`.

    TickwireError
    ├── ConfigurationError             tickwire.errors: a setting the process needs is missing or unusable
    ├── StaleEndpointsError            tickwire.endpoints: the endpoints file of a `tickwire run` that is gone
    ├── RestoreError                   tickwire.runtime.restore: state could not be read back in time
    ├── StageFenced                    tickwire.runtime.transactions: another process holds the stage's transactions
    ├── TransactionAborted             tickwire.runtime.transactions: a transaction was voided; restart from the commit
    ├── SubscriptionLimitError         producers.subscription_manager (also a ValueError)
    ├── ServiceUnavailable             consumers.api.errors: Redis or the broker cannot be used now (503)
    ├── RangeError                     consumers.tools.topic_range (also a ValueError)
    ├── ReplayError                    consumers.tools.replay (also a RuntimeError)
    ├── DiffError                      consumers.tools.diff (also a ValueError)
    ├── StackError                     deploy.stack: a component failed to start or died (also a RuntimeError)
    ├── NotReadyError                  deploy.embedded.readiness (also a RuntimeError)
    ├── BrokerSetupError               deploy.embedded.broker_libs: no Java or Maven, or the jars cannot be fetched
    ├── ProtocolError                  alpaca_feed.protocol: a request the local feed answers with an error
    ├── RestError                      alpaca_feed.rest
    ├── FaultError                     alpaca_feed.faults (also a ValueError)
    └── RecordingError                 alpaca_feed.recording (also a ValueError)

The builtin second bases keep older ``except ValueError`` / ``except RuntimeError`` callers working.
Library code raises these; only the command line (``deploy/cli.py``, the CLI modules and
``tickwire/cli_errors.py``, which they share) turns them into exit codes, so no library module raises
``SystemExit``.
"""

from __future__ import annotations


class TickwireError(Exception):
    """The root of tickwire's own errors: its message is one line a user can act on."""


class ConfigurationError(TickwireError):
    """A setting the process needs is missing or unusable; the message names the variable."""
