"""batchsubmit: submit hyperparameter sweeps to ModelArts training jobs, fast and exactly once."""

from batchsubmit.errors import BatchSubmitError

__all__ = ["BatchSubmitError", "__version__"]
__version__ = "0.1.0"
