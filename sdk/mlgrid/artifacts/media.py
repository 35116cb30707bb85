"""Figures and images to bytes, with matplotlib / PIL / numpy imported only when used."""

from __future__ import annotations

import io
import posixpath
from typing import Any

from mlgrid.exceptions import InvalidParameterValue

_IMAGE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


def _extension(artifact_file: str) -> str:
    return posixpath.splitext(artifact_file)[1].lower()


def figure_bytes(figure: Any, artifact_file: str, save_kwargs: dict[str, Any]) -> bytes:
    """A matplotlib figure rendered in the format of ``artifact_file``'s extension (or a
    plotly figure as HTML)."""
    extension = _extension(artifact_file)
    if hasattr(figure, "savefig"):  # matplotlib
        buffer = io.BytesIO()
        figure.savefig(buffer, format=extension.lstrip(".") or "png", **save_kwargs)
        return buffer.getvalue()
    if hasattr(figure, "to_html") and extension in (".html", ".htm"):  # plotly
        html: str = figure.to_html(**save_kwargs)
        return html.encode("utf-8")
    raise InvalidParameterValue(
        f"figure of type {type(figure).__name__} is not supported: pass a matplotlib figure "
        "(or a plotly figure with an .html artifact_file)"
    )


def _to_pil(image: Any) -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise InvalidParameterValue("log_image needs Pillow: pip install pillow") from None
    if isinstance(image, Image.Image):
        return image
    try:
        import numpy as np
    except ImportError:
        raise InvalidParameterValue(
            f"image of type {type(image).__name__} is not supported: pass a PIL image or a "
            "numpy array"
        ) from None
    if not isinstance(image, np.ndarray):
        raise InvalidParameterValue(
            f"image of type {type(image).__name__} is not supported: pass a PIL image or a "
            "numpy array"
        )
    array = image
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InvalidParameterValue(
            f"image array of shape {array.shape} is not allowed: use (H, W), (H, W, 1), "
            "(H, W, 3) or (H, W, 4)"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if np.issubdtype(array.dtype, np.floating):
        if array.size and (array.min() < 0 or array.max() > 1):
            raise InvalidParameterValue("float image values must lie in [0, 1] (as in MLflow)")
        array = (array * 255).round()
    elif array.size and (array.min() < 0 or array.max() > 255):
        raise InvalidParameterValue("integer image values must lie in [0, 255] (as in MLflow)")
    return Image.fromarray(array.astype(np.uint8))


def image_bytes(image: Any, artifact_file: str) -> bytes:
    """A numpy array or PIL image encoded in the format of ``artifact_file``'s extension."""
    extension = _extension(artifact_file)
    image_format = _IMAGE_FORMATS.get(extension)
    if image_format is None:
        allowed = ", ".join(sorted(_IMAGE_FORMATS))
        raise InvalidParameterValue(
            f"artifact_file {artifact_file!r} is not allowed for an image: use one of {allowed}"
        )
    pil = _to_pil(image)
    if image_format == "JPEG" and pil.mode in ("RGBA", "P", "LA"):
        pil = pil.convert("RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format=image_format)
    return buffer.getvalue()
