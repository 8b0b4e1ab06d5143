"""Machine learning on silver: model configs (conf/models), features, pipelines and MLflow."""
