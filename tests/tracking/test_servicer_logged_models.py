"""MLflow 3's logged-model RPCs through a real gRPC server on port 0 (SQLite and PostgreSQL)."""

from __future__ import annotations

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2 as t
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

from .test_servicer import call_error, make_run, stub  # noqa: F401 - the server fixture


def test_logged_model_lifecycle_over_grpc(stub) -> None:  # noqa: F811
    experiment_id, run_id = make_run(stub)
    model = stub.CreateLoggedModel(
        pb.CreateLoggedModelRequest(
            experiment_id=experiment_id,
            name="clf",
            source_run_id=run_id,
            params=[t.Param(key="alpha", value="0.1")],
            tags=[common_pb2.Tag(key="k", value="v")],
        )
    ).model
    model_id = model.info.model_id
    assert model.info.status == t.LOGGED_MODEL_STATUS_PENDING
    stub.LogOutputs(pb.LogOutputsRequest(run_id=run_id, models=[t.ModelOutput(model_id=model_id)]))
    stub.LogMetric(
        pb.LogMetricRequest(
            run_id=run_id,
            key="acc",
            value=0.9,
            timestamp=1,
            model_id=model_id,
            dataset_name="test",
            dataset_digest="abc",
        )
    )
    stub.LogLoggedModelParams(
        pb.LogLoggedModelParamsRequest(model_id=model_id, params=[t.Param(key="d", value="3")])
    )
    tagged = stub.SetLoggedModelTags(
        pb.SetLoggedModelTagsRequest(model_id=model_id, tags=[common_pb2.Tag(key="k2", value="w")])
    ).model
    assert {x.key for x in tagged.info.tags} == {"k", "k2"}
    stub.DeleteLoggedModelTag(pb.DeleteLoggedModelTagRequest(model_id=model_id, tag_key="k"))
    final = stub.FinalizeLoggedModel(
        pb.FinalizeLoggedModelRequest(model_id=model_id, status=t.LOGGED_MODEL_STATUS_READY)
    ).model
    assert final.info.status == t.LOGGED_MODEL_STATUS_READY
    assert [(m.key, m.value, m.dataset_digest) for m in final.data.metrics] == [("acc", 0.9, "abc")]
    assert {p.key for p in final.data.params} == {"alpha", "d"}
    found = stub.SearchLoggedModels(
        pb.SearchLoggedModelsRequest(
            experiment_ids=[experiment_id],
            filter="metrics.acc >= 0.9 AND status = 'READY'",
            datasets=[pb.LoggedModelDatasetFilter(dataset_name="test", dataset_digest="abc")],
            order_by=[pb.LoggedModelOrderBy(field_name="metrics.acc", ascending=False)],
        )
    )
    assert [m.info.model_id for m in found.models] == [model_id] and not found.next_page_token
    run = stub.GetRun(pb.GetRunRequest(run_id=run_id)).run
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    stub.DeleteLoggedModel(pb.DeleteLoggedModelRequest(model_id=model_id))
    err = call_error(stub.GetLoggedModel, pb.GetLoggedModelRequest(model_id=model_id))
    assert isinstance(err, ResourceDoesNotExist)
    got = stub.GetLoggedModel(pb.GetLoggedModelRequest(model_id=model_id, allow_deleted=True))
    assert got.model.info.name == "clf"


def test_logged_model_errors_over_grpc(stub) -> None:  # noqa: F811
    err = call_error(
        stub.CreateLoggedModel, pb.CreateLoggedModelRequest(experiment_id="0", name="a:b")
    )
    assert isinstance(err, InvalidParameterValue) and "logged model name" in err.message
    err = call_error(
        stub.SearchLoggedModels,
        pb.SearchLoggedModelsRequest(experiment_ids=["0"], filter="params.x > 1"),
    )
    assert isinstance(err, InvalidParameterValue) and "operator >" in err.message
