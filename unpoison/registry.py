"""Name → class registries for attacks, detectors and unlearners (the project's extension points)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Callable, ClassVar, Generic, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """A dict of registered classes with a decorator to add one and a factory to instantiate one."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: store the class under ``name`` and set its ``name`` attribute."""

        def deco(cls: type[T]) -> type[T]:
            cls.name = name  # type: ignore[attr-defined]
            self[name] = cls
            return cls

        return deco

    def create(self, name: str, params: dict[str, Any] | None = None) -> T:
        """Instantiate ``name`` with its config parameters; unknown names list the known ones."""
        if name not in self:
            raise ValueError(f"{self.kind} {name!r} is unknown; choose one of {sorted(self)}")
        return self[name](**(params or {}))


def settings_from_dict(cls: type[T], d: dict[str, Any] | None, key: str) -> T:
    """Build a settings dataclass from a config mapping; unknown keys are an error naming the allowed ones."""
    d = dict(d or {})
    allowed = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"unknown {key} keys {unknown}; allowed: {sorted(allowed)}")
    return cls(**d)


class ConfigSettings:
    """Mixin for settings dataclasses read from one config section (named by ``config_key``)."""

    config_key: ClassVar[str] = "settings"

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None):
        """Build from a config mapping; unknown keys are an error naming the allowed ones."""
        return settings_from_dict(cls, d, cls.config_key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]
