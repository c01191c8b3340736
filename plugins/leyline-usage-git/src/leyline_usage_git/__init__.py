"""A leyline-usage plugin that records the git repository, branch and commit.

Installing the package is enough: leyline-usage loads :mod:`leyline_usage_git.plugin`
through its ``leyline_usage`` entry-point group.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
