"""docker-compose.yml stays valid (checked with Debian's docker-compose when it is installed)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose not installed (Debian package docker-compose)")
def test_docker_compose_file_given_compose_validator_is_valid() -> None:
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
