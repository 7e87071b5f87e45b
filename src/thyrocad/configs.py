"""One convention for every settings dataclass: `to_dict` / `from_dict` / JSON, checked keys.

`PipelineConfig`, `TrainConfig`, `PhantomConfig` and `ExperimentConfig` derive from `Config`.
`to_dict()` gives plain JSON-ready values (tuples become lists, nested configs dicts);
`from_dict()` is its inverse: nested configs are rebuilt, lists become tuples again where the
field is a tuple, and an unknown key is a `ConfigError` naming it. So a results file that
stores `config.to_dict()` loads back into the config that made it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Self

from thyrocad.errors import ConfigError


class Config:
    """Mixin for frozen dataclasses of settings."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (nested configs as dicts, tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]

    def to_json(self) -> str:
        """Indented, key-sorted JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of `to_dict`; an unknown key or a wrong shape is a `ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} settings must be a JSON object, got {data!r}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names))}"
            )
        return cls(**{k: _restore(hints[k], v) for k, v in data.items()})

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Inverse of `to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__} settings are not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def _restore(hint: Any, value: Any) -> Any:
    """A JSON value back in the field's type: nested configs rebuilt, lists to tuples."""
    if isinstance(hint, type) and issubclass(hint, Config) and isinstance(value, dict):
        return hint.from_dict(value)
    candidates = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UNION) else ()
    for option in candidates:
        if isinstance(option, type) and issubclass(option, Config) and isinstance(value, dict):
            return option.from_dict(value)
    if isinstance(value, list) and _is_tuple(hint):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return value


_UNION = type(int | None)


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return True
    if origin in (typing.Union, _UNION):
        return any(_is_tuple(option) for option in typing.get_args(hint))
    return False
