"""The data side of the VLM judge: rubric templates, the price table, and reading a
model's answer (A / B / tie plus a rationale) out of free text or JSON."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from autojudge.errors import AutojudgeError
from autojudge.runtime.resources import JUDGES_DIR

TEMPLATES = JUDGES_DIR / "vlm_templates.yaml"
PRICES = JUDGES_DIR / "vlm_prices.yaml"
CRITERIA = ("overall", "prompt_alignment", "visual_quality", "text_rendering")

_CHOICES = {"a": "A", "image a": "A", "first": "A", "image 1": "A", "1": "A",
            "b": "B", "image b": "B", "second": "B", "image 2": "B", "2": "B",
            "tie": "tie", "equal": "tie", "both": "tie", "neither": "tie", "draw": "tie",
            "same": "tie"}
REFUSAL = re.compile(r"^\W*(i'?m sorry|i am sorry|sorry|i can(?:no|')t|i cannot|i won'?t|"
                      r"i am unable|i'm unable|as an ai)", re.I)


def _norm_choice(value: Any) -> str | None:
    if value is None:
        return None
    key = str(value).strip().strip(".\"'*").lower()
    return _CHOICES.get(key)


def parse_answer(text: str | None) -> tuple[str | None, str]:
    """(choice "A" | "B" | "tie" or None, rationale) from a model's answer text."""
    if not text:
        return None, ""
    body = re.sub(r"```(?:json)?", "", text).strip()
    for match in re.finditer(r"\{.*?\}", body, re.S):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            lowered = {str(k).lower(): v for k, v in obj.items()}
            for key in ("winner", "choice", "better", "answer", "preferred"):
                choice = _norm_choice(lowered.get(key))
                if choice:
                    return choice, str(lowered.get("rationale") or lowered.get("reason")
                                       or lowered.get("explanation") or "")
    m = re.search(r"(?:winner|answer|better|choice)\W{0,5}(?:is\s+)?(?:image\s+)?"
                  r"\b(A|B|tie)\b", body, re.I)
    if m:
        return _norm_choice(m.group(1)), body
    choice = _norm_choice(body)
    return (choice, "") if choice else (None, "")


def load_templates(path: str | Path = "") -> dict[str, Any]:
    import yaml

    source = Path(path).expanduser() if path else TEMPLATES
    if not source.is_file():
        raise AutojudgeError(f"VLM templates file not found: {source}; give an existing YAML "
                             f"(see judges/vlm_templates.yaml)")
    with source.open() as f:
        data = yaml.safe_load(f) or {}
    for key in ("system", "user", "criteria"):
        if key not in data:
            raise AutojudgeError(f"VLM templates {source}: missing '{key}'")
    return data


def load_prices(path: Path = PRICES) -> dict[str, dict[str, float]]:
    if not path.is_file():
        return {}
    import yaml

    with path.open() as f:
        return dict((yaml.safe_load(f) or {}).get("models") or {})


def model_price(model: str, input_per_mtok: float | None,
                output_per_mtok: float | None) -> tuple[float, float] | None:
    """USD per million (input, output) tokens of `model`: the configured prices where
    given, else the price table; None when neither prices it (a local server), so its
    calls carry no cost rather than a made-up 0."""
    table = load_prices().get(model, {})
    pin = input_per_mtok if input_per_mtok is not None else table.get("input_per_mtok")
    pout = output_per_mtok if output_per_mtok is not None else table.get("output_per_mtok")
    if pin is None and pout is None:
        return None
    return float(pin or 0.0), float(pout or 0.0)


def usage_cost(usage: Any, price: tuple[float, float] | None
               ) -> tuple[int, int, float | None] | None:
    """(prompt tokens, completion tokens, USD or None when unpriced) of one call from the
    `usage` its response reports; None when it reports no token counts."""
    if usage is None or getattr(usage, "prompt_tokens", None) is None:
        return None
    prompt_tokens = int(usage.prompt_tokens or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = None if price is None else \
        (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6
    return prompt_tokens, completion_tokens, cost


def fit_image(image: Any, max_side: int) -> Any:
    """An RGB copy of `image` whose longer side is at most `max_side` (LANCZOS)."""
    from PIL import Image

    from autojudge.judges.ocr import to_rgb

    im = to_rgb(image)
    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.LANCZOS)
    return im


def image_data_url(image: Any, max_side: int, image_format: str) -> str:
    """`image` fitted to `max_side` as a base64 data URL (png, or jpeg at quality 90), as
    chat-completions requests carry images."""
    import base64
    import io

    im = fit_image(image, max_side)
    buffer = io.BytesIO()
    if image_format == "jpeg":
        im.save(buffer, format="JPEG", quality=90)
        mime = "image/jpeg"
    else:
        im.save(buffer, format="PNG")
        mime = "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def retry_after_s(exc: Any) -> float | None:
    """Seconds an HTTP error's Retry-After header asks for (None: no usable header)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
