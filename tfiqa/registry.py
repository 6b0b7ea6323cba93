"""A small name -> object registry with helpful errors."""

import difflib

from tfiqa.errors import ConfigError


class UnknownNameError(ConfigError, KeyError):
    """A name that is not in a registry."""

    def __str__(self):
        return str(self.args[0])


class Registry:
    """Maps names to objects; used for backbones, readers and distortions.

    Args:
        kind: str. What is registered, used in error messages ("backbone").

    Example:
    ```python
    BACKBONES = Registry("backbone")

    @BACKBONES.register("resnet18")
    def resnet18(...): ...

    BACKBONES.get("resnet18")
    ```
    """

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, name, obj=None):
        """Registers `obj` under `name`; usable as a decorator."""

        def add(item):
            if name in self._items:
                raise ValueError(f"A {self.kind} named '{name}' is already registered.")
            self._items[name] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name):
        if name not in self._items:
            raise UnknownNameError(self.unknown_message(name))
        return self._items[name]

    def unknown_message(self, name):
        close = difflib.get_close_matches(str(name), self._items, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return (
            f"Unknown {self.kind} '{name}'.{hint} "
            f"Valid names: {', '.join(sorted(self._items))}."
        )

    def names(self):
        return sorted(self._items)

    def items(self):
        return sorted(self._items.items())

    def __contains__(self, name):
        return name in self._items

    def __len__(self):
        return len(self._items)
