"""MLflow "model from code": MLflow runs this file to build the multitask pyfunc model when it loads one."""
import mlflow

from reprotext.multitask.export import MultitaskPyfunc

mlflow.models.set_model(MultitaskPyfunc())
