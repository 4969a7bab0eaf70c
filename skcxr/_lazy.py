"""Lazy attribute access for packages whose public names live in private modules."""

import importlib

__all__ = ["attach"]


def attach(package_name, names_to_modules):
    """Return ``(__getattr__, __dir__, __all__)`` importing each name on first use.

    Parameters
    ----------
    package_name : str
        ``__name__`` of the package.
    names_to_modules : dict of str to str
        Public name -> module (relative to the package) that defines it. A name
        that maps to itself with a leading dot is a submodule.

    Examples
    --------
    >>> __getattr__, __dir__, __all__ = attach("skcxr", {"ImageLoader": "._loader"})
    >>> __all__
    ['ImageLoader']
    """

    def __getattr__(name):
        if name not in names_to_modules:
            raise AttributeError(f"module {package_name!r} has no attribute {name!r}")
        module = importlib.import_module(names_to_modules[name], package_name)
        if names_to_modules[name] == f".{name}":
            return module
        return getattr(module, name)

    def __dir__():
        return sorted(names_to_modules)

    return __getattr__, __dir__, list(names_to_modules)
