"""Tests of medlake.ml and the model jobs (train, validate, score)."""
