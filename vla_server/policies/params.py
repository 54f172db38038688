"""Turning a catalog entry's ``params`` mapping into a backend's frozen parameter dataclass.

Every backend declares its parameters as a frozen dataclass; `parse_params` refuses unknown keys
and wrong types with a message that names the model, the key, the value and what is allowed, so a
bad catalog fails when it is loaded, not at the first frame.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class PolicyParamsError(ValueError):
    """A backend parameter that is unknown or has the wrong type or value."""


def _check_value(model: str, key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PolicyParamsError(f"model {model!r} params.{key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyParamsError(f"model {model!r} params.{key}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise PolicyParamsError(f"model {model!r} params.{key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise PolicyParamsError(f"model {model!r} params.{key}: expected a string, got {value!r}")
        return value
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(model, key, value, arg)
            except PolicyParamsError as exc:
                errors.append(str(exc))
        raise PolicyParamsError(errors[0] if errors else f"model {model!r} params.{key}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise PolicyParamsError(f"model {model!r} params.{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(model, key, v, args[0]) for v in value)
        if len(value) != len(args):
            raise PolicyParamsError(
                f"model {model!r} params.{key}: expected a list of {len(args)} values, got {len(value)}"
            )
        return tuple(_check_value(model, key, v, a) for v, a in zip(value, args))
    return value


def parse_params(cls: type[T], params: Mapping[str, Any], model: str = "?") -> T:
    """Builds `cls` (a frozen dataclass) from `params`, checking keys and value types.

    Raises:
        PolicyParamsError: unknown key, wrong type, or the dataclass's own validation failed.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise PolicyParamsError(f"model {model!r} params: unknown keys {unknown}; allowed: {sorted(fields)}")
    values = {k: _check_value(model, k, v, hints[k]) for k, v in params.items()}
    try:
        return cls(**values)
    except PolicyParamsError:
        raise
    except (TypeError, ValueError) as exc:
        raise PolicyParamsError(f"model {model!r} params: {exc}") from exc
