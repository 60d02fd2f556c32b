from fastapi import APIRouter, Response

from app.deps import READ_ONLY, InferenceState
from app.routers import INFERENCE_ERRORS, QueryVersion, json_answer, pin_version
from app.schemas.dataset import DatasetPreviewRequest, DatasetPreviewResponse
from app.services import dataset as service

router = APIRouter(tags=["dataset"])


@router.post(
    "/dataset/preview",
    response_model=DatasetPreviewResponse,
    response_model_exclude_none=True,
    responses=INFERENCE_ERRORS,
    openapi_extra=READ_ONLY,
)
async def preview(
    request: DatasetPreviewRequest, state: InferenceState, version: QueryVersion = None
) -> Response:
    """The lesson's (x, y) windows, y shifted one step, and the batches a loader makes."""
    request = pin_version(request, version)
    result = await state.run(
        service.preview, request, state.registry, state.tokenizers, state.settings.limits
    )
    return json_answer(result, result.model, result.version)
