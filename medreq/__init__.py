"""medreq: real-time medicine requests between patients and pharmacies."""

__version__ = "0.1.0"
