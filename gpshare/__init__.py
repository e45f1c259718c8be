"""gpshare: child-safeguarding information-sharing assessments for GP practices."""

__version__ = "0.1.0"
