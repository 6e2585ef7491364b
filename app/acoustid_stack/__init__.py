"""acoustid-stack: the AcoustID fingerprint service, and the means to deploy and operate it."""

__version__ = "0.1.0"
