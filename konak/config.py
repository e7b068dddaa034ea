"""Configuration files: one TOML reader, one form of error, one way to take a secret.

``load_toml(path, Model)`` reads a TOML file and validates it into ``Model`` (a pydantic
dataclass built with :data:`SETTINGS`); whatever is wrong becomes one :class:`ConfigError`
line, ``file: section.key: reason``. A field validator raises ValueError (pydantic adds
where), or :class:`SettingError` about a key of the table it validates; a model's own
cross-field check (``__post_init__``) raises ConfigError with a message that names the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from konak.errors import ConfigError

T = TypeVar("T")

# Every settings model: unknown keys are refused; a key may be given by its TOML name
# (alias) or, in code, by its field name.
SETTINGS: Final = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

# TOML has real types: a quoted "80" is not a port, 1 is not true (an int is a float).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Positive = Annotated[float, Strict(), Field(gt=0)]


class SettingError(ValueError):
    """Raised by a validator about ``key`` inside the table being validated; the message
    becomes ``table.key: reason``."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


def require(ok: bool, message: str) -> None:
    """A settings model's own check (cross-field, say): ConfigError(message) unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def _between(low: float, high: float, why: str = "") -> Callable[[float], float]:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, not {value}{why}")
        return value

    return check


def between(low: float, high: float, why: str = "") -> AfterValidator:
    """A field validator: ``low <= value <= high``; ``why`` is added to the message."""
    return AfterValidator(_between(low, high, why))


def _one_of(choices: Sequence[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    return check


def one_of(choices: Sequence[str]) -> AfterValidator:
    """A field validator: the value is one of ``choices``."""
    return AfterValidator(_one_of(choices))


def _port(value: int) -> int:
    if not 0 < value < 65536:
        raise ValueError(f"must be a TCP port (1 to 65535), not {value}")
    return value


Port = Annotated[int, Strict(), AfterValidator(_port)]


def _relative_to_config(value: Any, info: ValidationInfo) -> Any:
    """A relative path given in a file is relative to that file's folder."""
    base = (info.context or {}).get("base_dir")
    if isinstance(value, str) and base is not None and not Path(value).is_absolute():
        return Path(base) / value
    return value


# A path in a config file; relative to the file (validation context ``base_dir``).
FilePath = Annotated[Path, BeforeValidator(_relative_to_config)]


# ------------------------------------------------------------------------------- reading


def read_text(path: Path, *, kind: str = "files") -> str:
    """A UTF-8 text file, or one ConfigError line naming the file (and the bad byte)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            f"{kind} must be UTF-8"
        ) from exc


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML document at ``path``; every failure is one ConfigError line."""
    text = read_text(path, kind="TOML files")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


# ---------------------------------------------------------------------- validation errors

# pydantic appends a union member's tag ("constrained-str", "int", ...) to the location of
# each failed member; the field is the location without it.
_UNION_TAG = re.compile(r"^(constrained-)?(str|int|float|bool|none|list\[.*\]|dict\[.*\])$")
_NOUNS: Final = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table",
    "mapping_type": "a table",
    "dataclass_type": "a table",
    "dataclass_exact_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "path_type": "a path",
}
_TOML_TYPES: Final = {"str": "string", "int": "integer", "dict": "table", "bool": "boolean"}


def _toml_type(value: object) -> str:
    name = type(value).__name__
    return _TOML_TYPES.get(name, name)


def field_path(loc: Sequence[int | str]) -> str | None:
    """The dotted name of a pydantic error location: ``wake.words[0].model``."""
    parts = list(loc)
    if len(parts) > 1 and isinstance(parts[-1], str) and _UNION_TAG.match(parts[-1]):
        parts.pop()
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or None


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    cause = error.get("ctx", {}).get("error")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown key"
    if kind in ("missing", "missing_argument", "missing_keyword_only_argument"):
        return "required"
    if kind in _NOUNS:
        # The type, never the value: the value may be a secret.
        return f"must be {_NOUNS[kind]}, not {_toml_type(error.get('input'))}"
    if isinstance(cause, Exception):
        return str(cause)
    msg = str(error["msg"])
    return "must be" + msg.removeprefix("Input should be") if msg.startswith("Input") else msg


def describe(exc: ValidationError, within: str = "") -> str:
    """One line for a validation error: ``section.key: reason`` of the first problem;
    ``within`` is the place of the validated table in its file."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(p for p in (within, field_path(first["loc"])) if p)
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, SettingError):
        where = f"{where}.{cause.key}" if where else cause.key
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    reason = _reason(first)
    return f"{where}: {reason}{more}" if where else f"{reason}{more}"


def validate(
    data: Any, model: type[T], *, context: Mapping[str, Any] | None = None, within: str = ""
) -> T:
    """Validate a parsed document (or the table ``within`` of one) into ``model``; one
    ConfigError line on any problem."""
    try:
        return TypeAdapter(model).validate_python(data, context=dict(context or {}))
    except ValidationError as exc:
        # Not chained: pydantic's own text shows the input, which may hold a secret.
        raise ConfigError(describe(exc, within)) from None


def load_toml(path: Path, model: type[T], *, context: Mapping[str, Any] | None = None) -> T:
    """Read the TOML file at ``path`` into ``model``: ``file: section.key: reason`` on error.

    Relative paths in the file (:data:`FilePath`) are relative to the file's folder.
    """
    data = read_toml(path)
    try:
        return validate(data, model, context={"base_dir": path.parent, **(context or {})})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc


def unknown_keys(data: Any, tables: Mapping[str, Sequence[str]]) -> None:
    """Refuse keys of TOML tables whose keys fields read through an ``AliasPath``:
    ``tables`` maps each such table to its known keys."""
    if not isinstance(data, dict):
        return
    for table, known in tables.items():
        raw = data.get(table, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{table}: must be a table, not {_toml_type(raw)}")
        extra = sorted(set(raw) - set(known))
        if extra:
            raise ConfigError(f"{table}.{extra[0]}: unknown key")


# ------------------------------------------------------------------------------- secrets


def take_secret(
    table: dict[str, Any],
    key: str,
    info: ValidationInfo | None = None,
    *,
    inline: bool = True,
    first_line: bool = False,
) -> None:
    """Replace ``<key>_env`` (an environment variable) or ``<key>_file`` (a file) in a TOML
    table by ``key``, the secret itself; the environment and files keep secrets out of the
    config file. ``inline=False`` refuses the secret written in the table."""
    env_key, file_key = f"{key}_env", f"{key}_file"
    given = [k for k in (key, env_key, file_key) if k in table]
    if len(given) > 1:
        raise SettingError(given[1], f"give only one of {', '.join(given)}")
    if key in table and not inline:
        raise SettingError(key, f"give it as {env_key} or {file_key}, never in this file")
    if env_key in table:
        name = table.pop(env_key)
        if not isinstance(name, str):
            raise SettingError(env_key, "must be the name of an environment variable")
        if name not in os.environ:
            raise SettingError(env_key, f"environment variable {name!r} is not set")
        table[key] = os.environ[name]
    elif file_key in table:
        path = table.pop(file_key)
        if not isinstance(path, str):
            raise SettingError(file_key, "must be a path")
        text = read_secret(_relative_to_config(path, info) if info else Path(path), file_key)
        lines = text.splitlines()
        if first_line and (not lines or not lines[0].strip()):
            raise SettingError(file_key, f"{path} is empty")
        table[key] = (lines[0] if first_line else text).strip()


def secrets(*keys: str, inline: bool = True) -> Any:
    """A ``mode="before"`` model validator that takes each of ``keys`` through
    :func:`take_secret`; assign it in the settings class body."""

    def take(cls: type[Any], data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in keys:
                take_secret(data, key, inline=inline)
        return data

    # A function whose first parameter is ``cls`` becomes a classmethod validator.
    return model_validator(mode="before")(take)


def read_secret(path: str | Path, key: str) -> str:
    """The text of a secret (or key) file; SettingError naming ``key``, the file and why."""
    try:
        return read_text(Path(path), kind="secret files")
    except ConfigError as exc:
        raise SettingError(key, exc.message) from exc
