"""The ``skcxr study`` application: fit a whole study, then render its report."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "run_study": "._run",
    },
)
