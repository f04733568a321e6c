"""What apps above accounts contribute to it (see ``instrumentshare.core.extensions``)."""

from instrumentshare.core.extensions import ExtensionPoint

personal_data_sections = ExtensionPoint(
    "accounts.personal_data_sections",
    "(user) -> dict[str, list[dict]]: what this app holds about the person, by section name, as JSON-ready "
    "rows (``accounts.privacy.rows`` makes them). Every app with a model that names a person contributes; "
    "tests/security/test_privacy.py fails on a model nobody exports.",
)
