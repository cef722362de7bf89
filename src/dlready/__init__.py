"""dlready: is this machine ready for deep learning, and how to make it ready."""

__version__ = "0.1.0"
