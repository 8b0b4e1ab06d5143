"""Tests of lakehouse.ml and the model jobs (train, validate, score)."""
