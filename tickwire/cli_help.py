"""Conventional ``--help`` for the tickwire commands, and the environment each command reads.

typer 0.29 renders every option's Python type (``--help <bool>``, ``--limit <int range>``) and wraps
required arguments in braces (``{topic}``). These command classes render what click users expect:
``TOPIC`` / ``[TOPIC]`` in the usage line, ``TEXT`` / ``INTEGER`` for a value, nothing for a flag, and an
"Environment" section listing each variable the command reads with its default.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

_LABELS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN", "int range": "INTEGER",
           "float range": "FLOAT", "Path": "PATH", "datetime": "DATETIME"}


def _type_label(python_type: str) -> str:
    """click's label for typer's ``<python type>``: ``<str>`` -> TEXT, ``<list[int]>`` -> INTEGER..."""
    inner = python_type.strip("<>")
    if inner.startswith("list[") and inner.endswith("]"):
        return _type_label(inner[5:-1]) + "..."
    return _LABELS.get(inner, inner.upper())


class ConventionalArgument(TyperArgument):
    """An argument shown as ``NAME`` (required) or ``[NAME]`` (optional), as click shows it."""

    def _base_name(self) -> str:
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self._base_name() if self.required else f"[{self._base_name()}]"
        return name + ("..." if self.nargs != 1 else "")

    def _rich_display_name(self) -> str:
        return self._base_name() + ("..." if self.metavar is None and self.nargs != 1 else "")

    @property
    def display_name_raw(self) -> str:  # type: ignore[override]
        """The name in the help table and in error hints."""
        return self._base_name()

    def display_type_rich(self, ctx: click.Context) -> str | None:
        """No type column for an argument: its help says what it is."""
        return None


class ConventionalOption(TyperOption):
    """An option shown with a value label (``TEXT``, ``INTEGER``) or, for a flag, with none."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        """``TEXT`` for a value, ``TEXT...`` for several, nothing for a flag or ``--help``."""
        if self.is_flag or self.name == "help":
            return None
        if self.metavar is not None:
            return self.metavar
        return _type_label(self.display_type(ctx)) + ("..." if self.nargs != 1 else "")


def _conventional(params: list[click.Parameter]) -> None:
    # typer builds its own parameter classes with no hook: the rendering is swapped per instance.
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = ConventionalArgument
        elif type(param) is TyperOption:
            param.__class__ = ConventionalOption


def environment_epilog(settings_class: type[Any]) -> str:
    """The "Environment" help section: ``VARIABLE (default): meaning`` for every setting of the class."""
    lines = [f"[bold]{name}[/bold] ({default}): {meaning}" for name, default, meaning in settings_class.environment()]
    return "Environment variables it reads (default in parentheses):\n\n" + "\n\n".join(lines)


class TickwireCommand(TyperCommand):
    """A command with conventional help; ``settings`` ("module:Class") adds its environment section."""

    settings: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _conventional(self.params)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The parameters, ``--help`` included, rendered conventionally."""
        params = super().get_params(ctx)
        _conventional(params)
        return params

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The help, with the environment section built on first use (no settings import at start-up)."""
        if self.settings and self.epilog is None:
            module, _, name = self.settings.partition(":")
            self.epilog = environment_epilog(getattr(importlib.import_module(module), name))
        super().format_help(ctx, formatter)


class TickwireGroup(TyperGroup):
    """A command group whose options, and every command and group below it, render conventionally."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The group's parameters, rendered conventionally."""
        params = super().get_params(ctx)
        _conventional(params)
        return params

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The sub-command; one declared elsewhere (``feed``, ``processor``) gets the conventional help too."""
        command = super().get_command(ctx, cmd_name)
        if type(command) is TyperCommand:
            command.__class__ = TickwireCommand
            _conventional(command.params)
        elif type(command) is TyperGroup:
            command.__class__ = TickwireGroup
        return command


def reads(settings: str) -> type[TickwireCommand]:
    """The command class for a command that reads the settings class ``settings`` ("module:Class")."""
    return type(f"{settings.rpartition(':')[2]}Command", (TickwireCommand,), {"settings": settings})
