"""The root of every exception the project raises on purpose."""

from __future__ import annotations


class JaxError(Exception):
    """Root exception; leaf classes in each package's exceptions.py carry data."""

    code: str = "jax_error"
    transient: bool = False
