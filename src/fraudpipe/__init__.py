"""fraudpipe: a reproducible, data-versioned pipeline for credit-card fraud detection."""

__version__ = "0.1.0"
