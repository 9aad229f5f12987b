"""Griffe extension for the API reference: the docstrings use Sphinx roles
(``:class:`~radiologynet.io.Image```), which Markdown would show literally; render each as
inline code of the name as Sphinx shows it (``~`` keeps the last component only)."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`")


def plain(text: str) -> str:
    """``text`` with every Sphinx role replaced by inline code of its target."""
    return ROLE.sub(
        lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text
    )


class SphinxRolesAsCode(griffe.Extension):
    def on_instance(self, **kwargs: Any) -> None:
        docstring = getattr(kwargs.get("obj"), "docstring", None)
        if docstring is not None and ":" in docstring.value:
            docstring.value = plain(docstring.value)
