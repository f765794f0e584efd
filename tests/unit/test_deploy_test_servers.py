"""TICKWIRE_TEST_CONTAINERS picks containers or native servers for the test session, with one clear error."""

import time

import pytest

from tests.servers import ServerSetupError, container_mode, docker_engine_available, use_containers


@pytest.mark.parametrize(("value", "mode"), [(None, "auto"), ("", "auto"), ("ON", "on"), (" off ", "off")])
def test_container_mode_given_the_variable_reads_it(value: str | None, mode: str) -> None:
    environ = {} if value is None else {"TICKWIRE_TEST_CONTAINERS": value}
    assert container_mode(environ) == mode


def test_container_mode_given_nonsense_names_the_choices() -> None:
    with pytest.raises(ServerSetupError, match="auto, on, off"):
        container_mode({"TICKWIRE_TEST_CONTAINERS": "yes"})


@pytest.mark.parametrize(("mode", "engine", "expected"), [
    ("auto", True, True), ("auto", False, False), ("on", True, True), ("off", True, False), ("off", False, False),
])
def test_use_containers_given_mode_and_engine_decides(mode: str, engine: bool, expected: bool) -> None:
    assert use_containers(mode, engine) is expected  # type: ignore[arg-type]


def test_use_containers_given_on_without_engine_fails_with_the_way_out() -> None:
    with pytest.raises(ServerSetupError, match="no Docker engine answers"):
        use_containers("on", False)


def test_docker_engine_available_given_no_daemon_behind_the_socket_is_false_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    started = time.monotonic()
    assert docker_engine_available() is False
    assert time.monotonic() - started < 5
