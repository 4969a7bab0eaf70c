"""``skcxr serve``: an upload-and-explain web app for a trained model.

A Flask app (:func:`create_app`) served by waitress (:func:`serve`), with the
page's assets inside the package so it works offline.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "create_app": "._app",
        "serve": "._server",
    },
)
