"""Silver layer: canonical, typed, deduplicated, masked and quality-gated entities."""
