"""Sphinx configuration: API reference (autosummary + numpydoc) and the
sphinx-gallery examples, which are executed at build time."""

import os
from importlib.metadata import version as _version

project = "skcxr"
author = "skcxr developers"
copyright = "2026, skcxr developers"
release = _version("skcxr")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Cross-references to other projects' objects stay plain text (no network here).
intersphinx_mapping = {}
nitpicky = False

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

html_theme = "pydata_sphinx_theme"
html_title = "skcxr"
html_theme_options = {"navigation_with_keys": False}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "plot_gallery": os.environ.get("SKCXR_DOCS_PLOT_GALLERY", "True"),
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": True,
}


def _skip_metadata_request_methods(app, what, name, obj, skip, options):
    # sklearn generates set_{fit,predict,...}_request on every estimator; their
    # docstrings point into sklearn's own documentation.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_methods)
