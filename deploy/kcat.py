"""``tickwire kcat ARGS``: kcat with a librdkafka that talks to the embedded broker, pointed at the running stack.

Debian's kcat links Debian's librdkafka, whose ApiVersionRequest the embedded broker (Tansu) rejects
("ApiVersionRequest failed: Local: Read underflow"). The librdkafka bundled in the confluent-kafka wheel
works; the wheel names it ``librdkafka-<hash>.so.1``, so it is linked as ``librdkafka.so.1`` into
``$TICKWIRE_RUN_DIR/kcat-lib`` and kcat runs with LD_LIBRARY_PATH pointing there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from tickwire.errors import TickwireError

INSTALL_HINT = "`make kcat` installs both (kcat from apt as root, confluent-kafka into .venv)"


class KcatUnavailableError(TickwireError):
    """kcat, or the confluent-kafka wheel's librdkafka, is not installed."""


def wheel_librdkafka() -> Path:
    """The librdkafka shared library bundled in the installed confluent-kafka wheel."""
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        raise KcatUnavailableError(f"confluent-kafka is not installed; {INSTALL_HINT}")
    libs = Path(spec.origin).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*"))
    if not found:
        raise KcatUnavailableError(f"no librdkafka in {libs} (a confluent-kafka built without it?); {INSTALL_HINT}")
    return found[0]


def library_dir(run_dir: Path) -> Path:
    """A directory holding ``librdkafka.so.1`` -> the wheel's librdkafka (what kcat's loader looks for)."""
    target = wheel_librdkafka()
    directory = run_dir / "kcat-lib"
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / "librdkafka.so.1"
    if not link.exists() or link.resolve() != target.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return directory


def kcat_command(args: Sequence[str], bootstrap: str | None, run_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and environment to exec: ``-b`` from the running stack unless ``args`` gives one."""
    binary = shutil.which("kcat") or shutil.which("kafkacat")
    if binary is None:
        raise KcatUnavailableError(f"kcat is not installed; {INSTALL_HINT}")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(library_dir(run_dir)), env.get("LD_LIBRARY_PATH")]))
    argv = [binary, *args]
    if "-b" not in args and not any(a.startswith("-b") and len(a) > 2 for a in args) and "-V" not in args:
        if not bootstrap:
            raise KcatUnavailableError("no broker: give -b host:port, set KAFKA_BOOTSTRAP_SERVERS, or start `make run`")
        argv[1:1] = ["-b", bootstrap]
    return argv, env
