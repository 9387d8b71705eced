"""The domain service (no web framework in here): `core.MedreqService` is the façade the
transports use, composed of parts (accounts, requests, conversation, delivery, presence,
webhooks, push, sandbox); `medreq.bootstrap` assembles it."""

from .base import Caller, Offer, Upload
from .core import MedreqService
from .live import MediaFile

__all__ = ["Caller", "MediaFile", "MedreqService", "Offer", "Upload"]
