"""Settings mistakes as one line each: the variable, what is wrong, and an example of a right value."""

from __future__ import annotations

import re
import tomllib
import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

from twin.settings import Settings

_FIELD_IN_SETTINGS_ERROR = re.compile(r'field "(\w+)"')
_EXAMPLE_ENDS = ("; ", " (")


def settings_problems(error: ValidationError | SettingsError | tomllib.TOMLDecodeError) -> list[str]:
    """One line per problem in the settings, never a secret's value."""
    if isinstance(error, ValidationError):
        return [_problem_line(detail) for detail in error.errors(include_url=False)]
    if isinstance(error, tomllib.TOMLDecodeError):
        return [f"TWIN_CONFIG_FILE: the settings file is not valid TOML ({error})"]
    found = _FIELD_IN_SETTINGS_ERROR.search(str(error))
    if found is None:
        return [f"settings: {error}"]
    name = found.group(1)
    return [f"{variable(name)}: could not be read ({error.__cause__ or error}){_example_suffix(name)}"]


def variable(field_name: str) -> str:
    """The environment variable that sets a field."""
    return f"TWIN_{field_name.upper()}"


def example(field_name: str) -> str | None:
    """An example of a right value for a field, from its description, its allowed values or its default."""
    field = Settings.model_fields.get(field_name)
    if field is None:
        return None
    return _from_description(field) or _from_annotation(field) or _from_default(field)


def _problem_line(detail: Any) -> str:
    location = [str(part) for part in detail["loc"]]
    message = detail["msg"].removeprefix("Value error, ")
    if not location:  # a check across several settings: its message names them
        return message
    name, inside = location[0], location[1:]
    where = f"{'.'.join(inside)}: " if inside else ""
    got = _shown_input(name, inside, detail.get("input"), message)
    prefix = "" if message.startswith(variable(name)) else f"{variable(name)}: "
    return f"{prefix}{where}{message}{got}{_example_suffix(name)}"


def _shown_input(name: str, inside: list[str], value: object, message: str) -> str:
    """The wrong value, when it is a plain one, not a secret (or part of one) and not already in the message."""
    field = Settings.model_fields.get(name)
    secret = field is not None and SecretStr in _types_in(field.annotation)
    if secret or any("key" in part or "token" in part or "secret" in part for part in inside):
        return ""
    if name == "database_url" or "url" in inside:  # a URL may hold a password
        return ""
    if isinstance(value, str | int | float) and repr(value) not in message:
        return f" (got {value!r})"
    return ""


def _example_suffix(name: str) -> str:
    value = example(name)
    return f"; for example {variable(name)}={value}" if value else ""


def _from_description(field: FieldInfo) -> str | None:
    description = field.description or ""
    if "e.g. " not in description:
        return None
    text = description.split("e.g. ", 1)[1]
    for end in _EXAMPLE_ENDS:
        text = text.split(end, 1)[0]
    return text.rstrip(".") or None


def _from_annotation(field: FieldInfo) -> str | None:
    for kind in _types_in(field.annotation):
        if get_origin(kind) is Literal:
            return " or ".join(str(choice) for choice in get_args(kind))
    return None


def _from_default(field: FieldInfo) -> str | None:
    default = field.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, int | float) or (isinstance(default, str) and default):
        return str(default)
    return None


def _types_in(annotation: object) -> list[object]:
    """The annotation and, for a union such as `X | None`, each of its members."""
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    return [annotation, *members]
