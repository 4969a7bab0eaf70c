"""Helpers shared across skcxr: the image data contract and random-state helpers."""
