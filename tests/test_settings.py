"""Settings parse strictly: a value that does not parse stops startup instead of guessing."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from tascade.env import env_bool, env_int, env_list


@pytest.mark.parametrize("raw,expected", [("1", True), ("TRUE", True), ("off", False), ("", False)])
def test_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG", default=False) is expected


@pytest.mark.parametrize("raw", ["flase", "2", "enabled"])
def test_a_bad_boolean_is_an_error_not_false(monkeypatch, raw):
    monkeypatch.setenv("X_FLAG", raw)
    with pytest.raises(ImproperlyConfigured):
        env_bool("X_FLAG", default=False)


def test_integers_are_strict_and_bounded(monkeypatch):
    monkeypatch.setenv("X_INT", "12s")
    with pytest.raises(ImproperlyConfigured):
        env_int("X_INT", 5)
    monkeypatch.setenv("X_INT", "3")
    with pytest.raises(ImproperlyConfigured):
        env_int("X_INT", 5, minimum=5)
    monkeypatch.setenv("X_INT", "30")
    assert env_int("X_INT", 5, minimum=5) == 30


def test_lists(monkeypatch):
    monkeypatch.setenv("X_LIST", "a, b,,c ")
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    monkeypatch.delenv("X_LIST")
    assert env_list("X_LIST", ["d"]) == ["d"]
