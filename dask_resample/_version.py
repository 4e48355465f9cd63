"""The package version (read by ``pyproject.toml`` and stored in every mosaic)."""

__version__ = "0.1.0"
