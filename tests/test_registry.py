import pytest

from tfiqa.errors import ConfigError
from tfiqa.registry import Registry


def test_register_and_get():
    registry = Registry("widget")

    @registry.register("round")
    def round_widget():
        return "round"

    assert registry.get("round") is round_widget
    assert "round" in registry
    assert registry.names() == ["round"]


def test_duplicate_name_is_an_error():
    registry = Registry("widget")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 2)


def test_miss_suggests_the_closest_name():
    registry = Registry("backbone")
    registry.register("resnet18", 1)
    registry.register("vgg16", 2)
    with pytest.raises(ConfigError, match="Did you mean 'resnet18'") as info:
        registry.get("resnet81")
    assert "vgg16" in str(info.value)
    assert isinstance(info.value, KeyError)
