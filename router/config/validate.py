"""Typed getters over one mapping of a fleet file, whose errors name the key path; the YAML
reader that refuses a key given twice.

`Section("fleet.yaml", data, "routing").integer("max_attempts", 3, minimum=1)` returns the
value or its default, or raises `ConfigError("fleet.yaml", "routing.max_attempts must be >= 1,
got 0")`; `done()` refuses the keys no getter asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(Exception):
    """A fleet file that cannot be used; `path` names the file, the message names the key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class Section:
    """Reads one mapping of the file, remembering which keys were used."""

    def __init__(self, file: str, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(file, f"{path or 'the file'} must be a mapping, got {kind(data)}")
        self.file, self.data, self.path = file, data, path
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.file, f"{self.key(name)} {message}")

    def raw(self, name: str) -> object:
        self._used.add(name)
        return self.data.get(name)

    def section(self, name: str) -> Section:
        return Section(self.file, self.raw(name), self.key(name))

    def string(
        self,
        name: str,
        default: str | None = None,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] = (),
    ) -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise self.fail(name, "is required")
            return default
        if not isinstance(value, str) or not value:
            raise self.fail(name, f"must be a non-empty string, got {kind(value)}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(name, f"has an invalid value {value!r}")
        if choices and value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int = 2**31) -> int:
        return self._number(name, default, int, minimum, maximum)

    def number(self, name: str, default: float, *, minimum: float, maximum: float = 1e9) -> float:
        return float(self._number(name, default, float, minimum, maximum))

    def _number(
        self, name: str, default: T, number_type: type, minimum: float, maximum: float
    ) -> T:
        value = self.raw(name)
        if value is None:
            return default
        allowed = (int,) if number_type is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise self.fail(
                name, f"must be a {'whole ' if number_type is int else ''}number, got {kind(value)}"
            )
        if value < minimum:
            raise self.fail(name, f"must be >= {minimum}, got {value}")
        if value > maximum:
            raise self.fail(name, f"must be <= {maximum}, got {value}")
        return value  # type: ignore[return-value]

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {kind(value)}")
        return value

    def items(self, name: str) -> list[Section]:
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(name, f"must be a list, got {kind(value)}")
        return [Section(self.file, item, f"{self.key(name)}[{i}]") for i, item in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self._used)
        if unknown:
            where = f" in {self.path}" if self.path else ""
            raise ConfigError(self.file, f"unknown key {self.key(unknown[0])!r}{where}")


def kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str) -> object:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"invalid YAML: {exc}") from None


def read(section: Section, build: Callable[[Section], T]) -> T:
    result = build(section)
    section.done()
    return result


def unique(file: str, what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(file, f"{what}[{i}].name {name!r} is used twice")
        seen.add(name)
