"""Name → class registries for attacks, detectors and unlearners (the project's extension points)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, ClassVar, Generic, TypeVar

from unpoison.params import ParamError, bind_params

T = TypeVar("T")


def _prefixed(key: str, err: ValueError) -> ParamError:
    """``err`` with ``key.`` in front of its message unless it already names ``key``."""
    msg = str(err)
    return ParamError(msg if msg.startswith(key) else f"{key}.{msg}")


class Registry(dict, Generic[T]):
    """A dict of registered classes with a decorator to add one and a factory to instantiate one.

    A registered class's settings are its constructor's typed keyword arguments (see
    :func:`unpoison.params.bind_params`); range checks live in the constructor and raise ``ValueError``.
    """

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

    def method_of(self, name: str, settings: dict[str, Any] | None) -> str:
        """The registered method a configured name runs: ``settings["method"]`` for a named variant (e.g.
        ``delta_influence_5pts: {method: delta_influence, n_points: 5}``), else the name itself.

        Raises:
            ValueError: the method is not registered, or a registered name is pointed at another method.
        """
        method = (settings or {}).get("method", name)
        if method not in self:
            what = f"method {method!r} of {name!r}" if method != name else repr(name)
            raise ValueError(f"{what} is not a known {self.kind}; registered: {sorted(self)}")
        if name in self and method != name:
            raise ValueError(
                f"{name!r} is a registered {self.kind} itself and cannot run method {method!r}: give the variant a new name"
            )
        return method

    def variant_params(self, settings: dict[str, Any] | None) -> dict[str, Any]:
        """A variant's settings without its ``method`` key."""
        return {k: v for k, v in (settings or {}).items() if k != "method"}

    def _get(self, name: str) -> type[T]:
        if name not in self:
            raise ValueError(f"{self.kind} {name!r} is unknown; choose one of {sorted(self)}")
        return self[name]

    def normalise(self, name: str, params: dict[str, Any] | None, key: str | None = None) -> dict[str, Any]:
        """``name``'s complete settings: unknown keys and wrong types rejected, defaults filled, ints → floats."""
        cls = self._get(name)
        binder = getattr(cls, "bind_params", None)
        key = key or f"{self.kind} {name}"
        return binder(params, key) if binder else bind_params(cls, params, key)

    def create(self, name: str, params: dict[str, Any] | None = None, key: str | None = None) -> T:
        """Instantiate ``name`` with its config parameters (checked by :meth:`normalise`, then its constructor)."""
        key = key or f"{self.kind} {name}"
        bound = self.normalise(name, params, key)
        try:
            return self._get(name)(**bound)
        except ValueError as err:
            raise _prefixed(key, err) from err


class ConfigSettings:
    """Mixin for settings dataclasses read from one config section (named by ``config_key``).

    Subclasses check value ranges in ``__post_init__`` (raise ``ValueError`` naming the field); list in
    ``execution_fields`` the fields that change only speed or memory, never results (see
    :class:`unpoison.execution.Execution`).
    """

    config_key: ClassVar[str] = "settings"
    execution_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, key: str | None = None):
        """Build from a config mapping: unknown keys, wrong types and out-of-range values are errors naming
        ``key`` (default: the class's ``config_key``), the field, the value and what is allowed."""
        key = key or cls.config_key
        bound = bind_params(cls, d, key)
        try:
            return cls(**bound)
        except ParamError as err:
            raise _prefixed(key, err) from err

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def science(self) -> dict[str, Any]:
        """The settings that determine results (everything but ``execution_fields``)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.execution_fields}

    def execution(self) -> dict[str, Any]:
        """The settings that change only speed or memory."""
        return {k: v for k, v in self.to_dict().items() if k in self.execution_fields}


PLUGINS_ENV = "UNPOISON_PLUGINS"  # the config's `plugins:`, passed to every job's process (os.pathsep-joined)


def load_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import each module of the config's ``plugins:`` so that the attacks, detectors and unlearners it registers
    exist in this process.

    Raises:
        ValueError: a module cannot be imported (the message names it and how to make it importable).
    """
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ValueError(
                f"plugins: cannot import {name!r} ({err}); install the package that holds it or put its folder on "
                "PYTHONPATH"
            ) from err


def load_env_plugins() -> None:
    """Import the plugins the workflow passed to this job through the environment (:data:`PLUGINS_ENV`)."""
    import os

    load_plugins([m for m in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if m])
