"""Entry file MLflow runs to build the pyfunc model (MLflow "models from code")."""

import mlflow.models

from grindwatch.tracking import GrindwatchPyfunc

mlflow.models.set_model(GrindwatchPyfunc())
