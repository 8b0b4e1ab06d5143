"""Gold: scenario marts computed from silver, every KPI through the metric dictionary."""
