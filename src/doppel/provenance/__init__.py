"""Responsible by construction: consent records, content screening, watermark, credentials, verify."""
