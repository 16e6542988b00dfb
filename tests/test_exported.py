"""The public surface is curated: ``__all__`` lists exactly the public names (ruff's RUF022 keeps it sorted)."""

from __future__ import annotations

import types

import throttlekit


def test_all_matches_the_public_names() -> None:
    public = {
        n
        for n in dir(throttlekit)
        if not n.startswith("_")
        and not isinstance(getattr(throttlekit, n), types.ModuleType)
        and n != "annotations"
    }
    assert (
        set(throttlekit.__all__) - {"__version__"} == public
    )  # __version__ is listed, as throttlekit-py does
    assert len(set(throttlekit.__all__)) == len(throttlekit.__all__)
