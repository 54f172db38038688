"""Backend parameters from a catalog mapping: keys and types checked, errors that name them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vla_server.models import ModelSpec
from vla_server.policies.factory import build_policy, check_spec
from vla_server.policies.params import PolicyParamsError, parse_params


@dataclass(frozen=True)
class P:
    rate: float = 1.0
    count: int = 2
    flag: bool = False
    name: str = "x"
    path: str | None = None
    pair: tuple[float, float] = (0.0, 0.0)
    many: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count: expected >= 0, got {self.count}")


def test_good_values_are_converted() -> None:
    p = parse_params(P, {"rate": 2, "count": 3, "flag": True, "name": "n", "path": None, "pair": [1, 2.5],
                         "many": [1, 2, 3]}, "m")
    assert p == P(2.0, 3, True, "n", None, (1.0, 2.5), (1, 2, 3))
    assert isinstance(p.rate, float) and isinstance(p.pair, tuple)
    assert parse_params(P, {}, "m") == P()


@pytest.mark.parametrize(("params", "message"), [
    ({"speed": 1}, r"model 'm' params: unknown keys \['speed'\]; allowed: \['count', 'flag'"),
    ({"rate": "fast"}, r"params.rate: expected a number, got 'fast'"),
    ({"rate": True}, r"params.rate: expected a number, got True"),
    ({"count": 1.5}, r"params.count: expected an integer, got 1.5"),
    ({"flag": "yes"}, r"params.flag: expected true or false"),
    ({"name": 3}, r"params.name: expected a string"),
    ({"path": 3}, r"params.path: expected a string"),
    ({"pair": [1]}, r"params.pair: expected a list of 2 values, got 1"),
    ({"pair": 1}, r"params.pair: expected a list"),
    ({"many": [1, "x"]}, r"params.many: expected an integer"),
    ({"count": -1}, r"model 'm' params: count: expected >= 0, got -1"),
])
def test_bad_values_name_model_key_and_value(params: dict, message: str) -> None:
    with pytest.raises(PolicyParamsError, match=message):
        parse_params(P, params, "m")


def test_factory_checks_every_backend_without_loading() -> None:
    check_spec(ModelSpec(id="a", backend="color-reach", params={"lift_z": 0.3}))
    check_spec(ModelSpec(id="b", backend="onnx", params={"path": "/nonexistent.onnx"}))  # loading would fail
    check_spec(ModelSpec(id="c", backend="openpi-remote", params={"url": "ws://10.255.255.1:9"}))  # no connect
    with pytest.raises(PolicyParamsError, match="model 's'.*sequence"):
        build_policy(ModelSpec(id="s", backend="scripted", params={"sequence": [[1, 2]]}))
    with pytest.raises(PolicyParamsError, match="model 'a' params: expected grasp_z < hover_z"):
        check_spec(ModelSpec(id="a", backend="color-reach", params={"grasp_z": 0.5}))
