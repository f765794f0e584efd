"""The embedded broker's runtime: a Java 17+ ``java``, and Kafka's jars fetched by Maven into a cache, once.

The jars are what ``kafka-broker/pom.xml`` pins (Kafka and its log4j2 binding), copied from Maven Central by
``mvn dependency:copy-dependencies`` into ``<cache>/kafka-libs-<hash of the pom>`` (``TICKWIRE_CACHE_DIR`` for
``tickwire run``, default ``~/.cache/tickwire``): outside the venv, so ``make clean`` keeps them, and a new pom is
a new directory. Maven
writes into a temporary directory renamed into place when complete, so two first runs at once both succeed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import structlog

from tickwire.errors import TickwireError

log = structlog.get_logger(__name__)

BROKER_FILES = Path(__file__).with_name("kafka-broker")  # pom.xml, log4j2.properties
POM = BROKER_FILES / "pom.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
MAVEN_TIMEOUT_S = 900.0  # a cold ~/.m2 downloads ~45 MB
MIN_JAVA = 17  # Kafka 4.x brokers need Java 17 (minNonClientJavaVersion)
NO_BROKER_HINT = "or set KAFKA_BOOTSTRAP_SERVERS to a running broker"


class BrokerSetupError(TickwireError, RuntimeError):
    """Java or Maven is missing, or the broker's jars could not be fetched: the message says what to install."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tickwire``, else ``~/.cache/tickwire``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickwire"


def libs_dir(cache: Path | None = None) -> Path:
    """Where the jars of the current pom.xml live (present once fetched)."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return (cache or default_cache_dir()) / f"kafka-libs-{digest}"


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH, checked to be Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        raise BrokerSetupError(f"the embedded Kafka broker needs Java {MIN_JAVA}+ and none is installed: install "
                               f"it (Debian: apt-get install openjdk-17-jre-headless; `make run` does as root), "
                               f"{NO_BROKER_HINT}")
    version = _java_major(java)
    if version is not None and version < MIN_JAVA:
        raise BrokerSetupError(f"the embedded Kafka broker needs Java {MIN_JAVA}+, but {java} is Java {version}: "
                               f"set JAVA_HOME to a newer JDK, {NO_BROKER_HINT}")
    return java


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


async def ensure_broker_libs(cache: Path | None = None) -> Path:
    """The directory of the broker's jars, fetched with Maven first if this pom's are not cached yet."""
    return await asyncio.to_thread(fetch_broker_libs, cache)


def fetch_broker_libs(cache: Path | None = None) -> Path:
    """:func:`ensure_broker_libs`, blocking (Maven runs for a few seconds with a warm ~/.m2)."""
    target = libs_dir(cache)
    if target.is_dir():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerSetupError("the embedded Kafka broker's jars are fetched once with Maven, which is not installed: "
                               "install it (Debian: apt-get install maven; `make run` does as root), "
                               f"{NO_BROKER_HINT}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{target.name}.partial-"))
    log.info("fetching the embedded Kafka broker's jars with Maven (once)", into=str(target))
    try:
        try:
            done = subprocess.run(
                [mvn, "-B", "-q", "-f", str(POM), DEPENDENCY_PLUGIN, "-DincludeScope=runtime",
                 f"-DoutputDirectory={staging}"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BrokerSetupError(f"Maven did not fetch the Kafka broker's jars within {MAVEN_TIMEOUT_S:.0f} s "
                                   "(is Maven Central reachable?)") from None
        if done.returncode != 0:
            lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
            reason = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "no output")
            raise BrokerSetupError(f"Maven could not fetch the Kafka broker's jars (exit {done.returncode}): "
                                   f"{reason.strip()} (is Maven Central reachable? run `mvn -f {POM} "
                                   f"{DEPENDENCY_PLUGIN}` to see more)")
        try:
            staging.rename(target)
        except OSError:  # another process completed it first: theirs is as good
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
