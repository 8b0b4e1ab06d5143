"""Multi-plant source simulator: deterministic, heterogeneous per-plant extracts."""
