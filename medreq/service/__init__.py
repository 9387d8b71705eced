"""The domain service (no web framework in here): see `core.MedreqService`."""

from .core import Caller, MedreqService

__all__ = ["Caller", "MedreqService"]
