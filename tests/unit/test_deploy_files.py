"""docker-compose.yml and the Dockerfile describe a runnable deployment (the compose validator runs when
Debian's docker-compose is installed; `make test` installs it when it can)."""

import shutil
import subprocess
from pathlib import Path

import click
import pytest
import typer.main
import yaml

from deploy.cli import app
from deploy.healthcheck import role_of

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TICKWIRE_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "tickwire:local"}


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose not installed (Debian package; `make test` installs it as root)")
def test_docker_compose_file_given_compose_validator_is_valid() -> None:
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_compose_given_the_topology_runs_every_service_of_the_design() -> None:
    commands = {name: s["command"][0] for name, s in TICKWIRE_SERVICES.items()}
    assert {"redpanda", "console", "redis"} <= set(SERVICES)
    assert sorted(commands.values()) == ["api", "create-topics", "feed", "ingest", "ingest", "processor", "processor",
                                         "processor"]
    stages = sorted(s["environment"]["TICKWIRE_PROCESSOR_STAGES"] for s in TICKWIRE_SERVICES.values()
                    if s["command"][0] == "processor")
    assert stages == ["pnl", "price", "price"]  # the P&L fan-out in a process of its own
    assert "8004:8004" in SERVICES["api"]["ports"]
    assert all(s["environment"]["TICKWIRE_API_HOST"] == "0.0.0.0" for s in TICKWIRE_SERVICES.values())


@pytest.mark.parametrize("name", sorted(TICKWIRE_SERVICES))
def test_compose_given_a_tickwire_service_its_command_parses_as_a_cli_command(name: str) -> None:
    command = typer.main.get_command(app)
    args = list(TICKWIRE_SERVICES[name]["command"])
    with command.make_context("tickwire", args, resilient_parsing=False) as context:
        sub = command.get_command(context, args[0])
        assert sub is not None, f"{name}: no command {args[0]!r}"
        if isinstance(sub, click.Group):
            sub = sub.get_command(context, args[1])
            args = args[1:]
        sub.make_context(args[0], args[1:])


def test_compose_given_services_that_need_topics_they_start_after_create_topics() -> None:
    for name, service in TICKWIRE_SERVICES.items():
        if service["command"][0] in ("ingest", "processor", "api"):
            assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully", name
    assert SERVICES["topics"]["restart"] == "no"


def test_dockerfile_given_production_use_is_slim_non_root_and_healthchecked() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "USER tickwire" in dockerfile and "HEALTHCHECK" in dockerfile
    assert "--constraint requirements.lock" in dockerfile  # runtime deps only, at the locked versions


@pytest.mark.parametrize(("argv", "role"), [
    (["/sbin/docker-init", "--", "/usr/local/bin/tickwire", "api"], "api"),
    (["/sbin/docker-init", "--", "/usr/local/bin/tickwire", "processor"], "processor"),
    (["tickwire", "ingest"], "ingest"),
    (["tickwire", "feed", "serve", "--port", "8765"], "feed"),
    (["tickwire", "create-topics"], None),
])
def test_healthcheck_given_a_container_command_finds_its_role(argv: list[str], role: str | None) -> None:
    assert role_of(argv) == role


def test_dockerfile_given_the_packages_pyproject_ships_copies_every_one() -> None:
    """Test that the image holds every package the wheel ships: `tickwire` imports all of them at start."""
    import tomllib

    shipped = {name.rstrip("*") for name in tomllib.loads((ROOT / "pyproject.toml").read_text())
               ["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    assert shipped <= copied, shipped - copied
