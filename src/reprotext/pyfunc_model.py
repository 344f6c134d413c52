"""MLflow "model from code": MLflow runs this file to build the pyfunc model when it loads one."""
import mlflow

from reprotext.export import ReprotextPyfunc

mlflow.models.set_model(ReprotextPyfunc())
