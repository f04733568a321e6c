"""Extension points: how a lower app lets a higher one contribute, without ever importing it.

Apps depend downward only (catalog knows nothing of bookings or billing). Where a lower app needs
something only a higher one can give -- "is this instrument free then?" for the catalog's search, the
fee standard on the instrument page, a section of a person's data export, the billing account a
booking is charged to -- the lower app declares an extension point, documents what a contribution
receives and returns, and calls it. The higher app registers its contribution in its
``AppConfig.ready()``::

    # catalog/extensions.py (the lower app declares)
    instrument_page_facts = ExtensionPoint("catalog.instrument_page_facts", "(instrument) -> dict of facts")

    # billing/apps.py (the higher app contributes)
    from catalog.extensions import instrument_page_facts
    instrument_page_facts.register(fee_facts)

This is the only mechanism for it: no hook lists, no ``try: import``. Django's model signals are used
for one thing only, a higher app dropping a cache when a lower app's rows change (oversight).
Every point lists itself in ``ExtensionPoint.declared`` (the architecture tests and docs read it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar


class ExtensionPoint:
    declared: ClassVar[dict[str, ExtensionPoint]] = {}

    def __init__(self, name: str, contract: str, *, single: bool = False) -> None:
        """``contract`` says what a contribution is called with and returns; ``single`` points take at
        most one contribution (a second is an error at start-up, not a silent override)."""
        if name in self.declared:
            raise ValueError(f"extension point {name} is declared twice")
        self.name, self.contract, self.single = name, contract, single
        self._contributions: list[Callable] = []
        self.declared[name] = self

    def __repr__(self) -> str:
        return f"<ExtensionPoint {self.name}: {len(self._contributions)} contribution(s)>"

    def register(self, contribution: Callable) -> Callable:
        """Add a contribution (idempotent: ``ready()`` may run twice in tests). Usable as a decorator."""
        key = _key(contribution)
        if any(_key(existing) == key for existing in self._contributions):
            return contribution
        if self.single and self._contributions:
            raise ValueError(f"{self.name} takes one contribution; {_key(self._contributions[0])} is registered")
        self._contributions.append(contribution)
        return contribution

    @property
    def contributions(self) -> tuple[Callable, ...]:
        return tuple(self._contributions)

    def __bool__(self) -> bool:
        return bool(self._contributions)

    def collect(self, *args: Any, **kwargs: Any) -> list[Any]:
        """Every contribution's answer, in registration order (the order of INSTALLED_APPS)."""
        return [contribution(*args, **kwargs) for contribution in self._contributions]

    def call(self, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        """A single point's one contribution, or ``default`` when no app contributes."""
        if not self._contributions:
            return default
        return self._contributions[0](*args, **kwargs)


def _key(contribution: Callable) -> str:
    return f"{getattr(contribution, '__module__', '?')}.{getattr(contribution, '__qualname__', repr(contribution))}"
