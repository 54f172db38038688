"""One wording for every config section: a mapping of known keys."""

from __future__ import annotations

import pytest

from oculus_server.config_section import section_values
from oculus_server.errors import ConfigError


def test_a_section_is_a_mapping_of_known_keys() -> None:
    assert section_values(None, "safety", ("a", "b")) == {}
    d = {"a": 1}
    got = section_values(d, "safety", ("a", "b"))
    assert got == d and got is not d
    with pytest.raises(ConfigError, match=r"^safety config: expected a mapping, got list$"):
        section_values([1], "safety", ("a",))
    with pytest.raises(ConfigError, match=r"^safety config: unknown key 'c'; allowed keys: a, b$"):
        section_values({"c": 1}, "safety", ("a", "b"))


def test_unknown_keys_are_all_named_with_where_they_belong() -> None:
    hints = {"x": "belong in the 'safety:' section", "y": "belong in the 'safety:' section"}
    with pytest.raises(ConfigError) as err:
        section_values({"x": 1, "q": 2, "y": 3}, "policy", ("a",), hints)
    assert str(err.value) == (
        "policy config: unknown key 'x' (and ['q', 'y']); allowed keys: a; x, y belong in the 'safety:' section"
    )
