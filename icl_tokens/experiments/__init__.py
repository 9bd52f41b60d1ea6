"""One module per paper experiment; each turns a config into scoring items and runs the engine."""

from .representation import *  # noqa: F401,F403
from .representation import __all__  # noqa: F401
