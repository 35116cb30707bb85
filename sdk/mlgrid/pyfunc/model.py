"""The python_function flavor's objects: what users subclass, and what ``load_model`` returns."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PythonModelContext:
    """Handed to ``load_context`` and ``predict``: local paths of the model's artifacts."""

    #: Artifact name -> absolute local path (inside the loaded model directory).
    artifacts: dict[str, str] = field(default_factory=dict)
    #: The ``model_config`` given to save_model/log_model.
    model_config: dict[str, Any] = field(default_factory=dict)


class PythonModel:
    """Base class of custom models (MLflow's ``mlflow.pyfunc.PythonModel``).

    Override :meth:`predict`; override :meth:`load_context` to load artifacts once when the
    model is loaded. Instances are pickled with cloudpickle, so closures and lambdas work.
    """

    def load_context(self, context: PythonModelContext) -> None:
        """Called once by ``load_model`` before the first prediction."""

    def predict(
        self, context: PythonModelContext, model_input: Any, params: dict | None = None
    ) -> Any:
        raise NotImplementedError(
            "subclasses of PythonModel implement predict(context, model_input)"
        )


class FunctionModel(PythonModel):
    """Wraps a plain function ``f(model_input)`` so it can be logged like a PythonModel."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func

    def predict(
        self, context: PythonModelContext, model_input: Any, params: dict | None = None
    ) -> Any:
        return self.func(model_input)


def _accepts_params(method: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "params" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


class _PythonModelPredictor:
    """Calls a PythonModel's ``predict(context, data[, params])``."""

    def __init__(self, python_model: Any, context: PythonModelContext) -> None:
        self.python_model = python_model
        self.context = context
        self._with_params = _accepts_params(python_model.predict)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if self._with_params:
            return self.python_model.predict(self.context, data, params=params)
        return self.python_model.predict(self.context, data)


class PyFuncModel:
    """A loaded model: ``predict(data)`` checks ``data`` against the model's signature (when it
    has one), converts it, and calls the model: a PythonModel's ``predict(context, data)``, or
    the object the flavor's loader module returned (MLflow's sklearn flavor, ...)."""

    def __init__(
        self,
        predictor: Any,
        metadata: dict[str, Any],
        *,
        python_model: PythonModel | None = None,
        context: PythonModelContext | None = None,
    ):
        self._predictor = predictor
        self._python_model = python_model
        self._context = context or PythonModelContext()
        #: The parsed MLmodel descriptor.
        self.metadata = metadata
        self._predict_takes_params = _accepts_params(predictor.predict)
        from mlgrid.models.signature import ModelSignature

        entry = metadata.get("signature")
        #: The model's signature (None when it was saved without one).
        self.signature: ModelSignature | None = ModelSignature.from_dict(entry) if entry else None

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        signature = self.signature
        if signature is not None:
            if signature.inputs is not None:
                from mlgrid.models.enforcement import conform_input

                data = conform_input(data, signature.inputs)
            if signature.params:
                params = {**signature.param_defaults(), **(params or {})}
        if self._predict_takes_params:
            return self._predictor.predict(data, params=params)
        return self._predictor.predict(data)

    def unwrap_python_model(self) -> Any:
        """The user's PythonModel instance (or what the flavor's loader returned)."""
        return self._python_model if self._python_model is not None else self._predictor

    @property
    def loader_module(self) -> str:
        return str(self.metadata.get("flavors", {}).get("python_function", {}).get("loader_module"))

    @property
    def model_config(self) -> dict[str, Any]:
        return self._context.model_config

    def __repr__(self) -> str:
        run = self.metadata.get("run_id") or "-"
        path = self.metadata.get("artifact_path") or "-"
        model = type(self.unwrap_python_model()).__name__
        return f"PyFuncModel(run_id={run}, artifact_path={path}, model={model})"
