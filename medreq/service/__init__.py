"""The domain service (no web framework in here): see `core.MedreqService`."""

from .base import Caller
from .core import MedreqService

__all__ = ["Caller", "MedreqService"]
