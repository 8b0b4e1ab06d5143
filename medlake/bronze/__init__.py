"""Bronze layer: land deliveries as delivered."""
