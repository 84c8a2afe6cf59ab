"""nbforget: catastrophic forgetting in multilingual language models."""

__version__ = "0.1.0"


class NbforgetError(Exception):
    """An error in user input or environment; the message names the input and the fix."""
