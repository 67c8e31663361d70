"""Batch jobs: many shots from one TOML job file, in this process or on a Ray cluster (see driver.py)."""
