"""astropy opens URLs it is given (a table "file name", a FITS path, IERS tables): in every process of
the portal it may not reach the network at all. Readers get bytes; this is the second wall.

:func:`keep_astropy_offline` turns the downloads off the moment astropy's modules are first imported,
by whoever imports them (wrapt's post-import hook), so that a process that never reads a table never
loads astropy (importing it up front cost every process 0.4 s of start-up). The settings call it.
``manage.py extract_catalogue``, which runs before them and whose pipeline imports astropy as it
starts, calls :func:`set_astropy_offline` right after those imports instead: the same settings with no
hook, and without importing wrapt (0.15 s of the command's start-up).
"""

from __future__ import annotations

from types import ModuleType


def _no_internet(module: ModuleType) -> None:
    module.conf.allow_internet = False  # type: ignore[attr-defined]


def _no_iers_download(module: ModuleType) -> None:
    module.conf.auto_download = False  # type: ignore[attr-defined]


def keep_astropy_offline() -> None:
    import wrapt

    wrapt.register_post_import_hook(_no_internet, "astropy.utils.data")
    wrapt.register_post_import_hook(_no_iers_download, "astropy.utils.iers")


def set_astropy_offline() -> None:
    """Downloads off now, in a process that has imported astropy already and has not used it yet."""
    from astropy.utils import data, iers

    _no_internet(data)
    _no_iers_download(iers)
