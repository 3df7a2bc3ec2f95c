"""Judge validation: does each judge pick the known better image of a controlled pair?

    python -m autojudge.validate judge=[ocr]                       # offline, real OCR
    python -m autojudge.validate judge=[clip,aesthetic,ocr] --n 40 --images ~/photos
    python -m autojudge.validate judge=[vlm] judge.vlm.criterion=visual_quality --json

Hydra overrides choose and configure the judges exactly as for `python -m autojudge`; the
pair families and their data live in `judges/validation_cases.yaml`, and each judge names
the families it is about (`validation_families`, autojudge.sdk; none named: every family):

    text       exact vs misspelled rendering           ocr, vlm (text_rendering)
    alignment  matching vs shuffled prompt              clip, vlm (prompt_alignment)
    quality    clean vs blurred / noised / JPEG-crushed aesthetic, vlm (overall, visual_quality)

A judge that ranks k images per call (`judge.vlm.k=4`) is also shown each pair's two
images inside a group of k, next to its pairwise verdicts (`validation_kwise`).

The better image is first in half of the pairs and second in the other half. Accuracy
counts a tie as half right; the interval is a Wilson score interval on the judged pairs
(failures are reported, not counted). Exit status: 0, or 2 on bad usage.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from autojudge.errors import AutojudgeError
from autojudge.runtime.progress import progress_bar
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.types import JudgeItem, PairItem, Prompt

CASES = JUDGES_DIR / "validation_cases.yaml"
FAMILIES = ("text", "alignment", "quality")


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (successes may be fractional: ties = 0.5).

    >>> lo, hi = wilson_interval(18, 20)
    >>> round(lo, 3), round(hi, 3)
    (0.699, 0.972)
    """
    if n <= 0:
        return 0.0, 1.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def misspell(text: str, i: int) -> str:
    """A deterministic misspelling: swap two adjacent letters, or change one."""
    letters = [k for k, ch in enumerate(text) if ch.isalpha()]
    k = letters[(i * 7 + 3) % max(1, len(letters) - 1)]
    chars = list(text)
    if i % 2 == 0 and k + 1 < len(chars) and chars[k + 1].isalpha() and chars[k] != chars[k + 1]:
        chars[k], chars[k + 1] = chars[k + 1], chars[k]
    else:
        chars[k] = "X" if chars[k].lower() != "x" else "Q"
    return "".join(chars)


def _item(prompt: Prompt, image: Any) -> JudgeItem:
    image = image.convert("RGB")
    return JudgeItem(prompt, image, hashlib.sha256(image.tobytes()).hexdigest())


def _typeset(text: str, size: tuple[int, int] = (320, 160)) -> Any:
    from PIL import Image

    from autojudge.generators.baselines import TypesetGenerator
    from autojudge.types import GenRequest

    gen = TypesetGenerator("validate", TypesetGenerator.Config(width=size[0], height=size[1],
                                                               margin=16))
    out = gen.generate([GenRequest(Prompt(id="v", text=text, expected_text=text), 0)])[0]
    return Image.open(io.BytesIO(out.image)).convert("RGB")


def _scene(i: int, size: int = 256) -> Any:
    """A clean procedural picture: a smooth two-colour gradient with a few sharp shapes."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(1000 + i)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[None, :, None]
    grad = (c1 * (1 - t) + c2 * t).repeat(size, axis=0).astype(np.uint8)
    image = Image.fromarray(grad)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.integers(0, size - 60, 2)
        w, h = rng.integers(30, 90, 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([int(x), int(y), int(x + w), int(y + h)], fill=colour, outline=(0, 0, 0), width=2)
    return image


def degrade(image: Any, spec: dict[str, Any], seed: int = 0) -> Any:
    """Blur, noise or JPEG-crush an image (the known-worse side of a quality pair)."""
    import numpy as np
    from PIL import Image, ImageFilter

    kind = spec["kind"]
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(float(spec.get("radius", 4))))
    if kind == "noise":
        rng = np.random.default_rng(seed)
        arr = np.asarray(image, dtype=np.float32)
        arr = arr + rng.normal(0, float(spec.get("sigma", 48)), arr.shape)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(spec.get("quality", 4)))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    raise AutojudgeError(f"validation case: unknown degradation '{kind}' (blur, noise, jpeg)")


def _user_images(folder: Path) -> tuple[list[Any], list[str] | None]:
    from PIL import Image

    captions_file = folder / "captions.jsonl"
    if captions_file.is_file():
        rows = [json.loads(line) for line in captions_file.read_text().splitlines() if line.strip()]
        return ([Image.open(folder / r["file"]).convert("RGB") for r in rows],
                [str(r["caption"]) for r in rows])
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if not files:
        raise AutojudgeError(f"--images {folder}: no .png/.jpg/.webp files; give a folder of "
                             f"images (and captions.jsonl for alignment cases)")
    return [Image.open(p).convert("RGB") for p in files], None


def shuffled_caption(i: int, n: int) -> int:
    """The other caption whose image is the worse side of alignment case i (n captions)."""
    j = i % n
    k = (j + 1 + i // n) % n
    return k if k != j else (j + 1) % n


def build_pairs(family: str, n: int, cases: dict[str, Any],
                images_dir: Path | None = None) -> list[tuple[PairItem, str, str]]:
    """(pair, better side "model_a"/"model_b", case label) x n, position-balanced."""
    raw: list[tuple[Prompt, Any, Any, str]] = []  # prompt, better image, worse image, label
    if family == "text":
        texts = list(cases["text"])
        for i in range(n):
            text = texts[i % len(texts)]
            wrong = misspell(text, i)
            prompt = Prompt(id=f"text-{i}", text=f'a sign that reads "{text}"',
                            expected_text=text)
            raw.append((prompt, _typeset(text), _typeset(wrong), f"exact vs '{wrong}'"))
    elif family == "alignment":
        user = _user_images(images_dir) if images_dir else ([], None)
        captions = user[1] or list(cases["alignment"])
        pictures = user[0] if user[1] else [_typeset(c) for c in captions]
        if len(captions) < 2:
            raise AutojudgeError("alignment cases need at least two captions")
        for i in range(n):
            j, k = i % len(captions), shuffled_caption(i, len(captions))
            prompt = Prompt(id=f"align-{i}", text=captions[j])
            raw.append((prompt, pictures[j], pictures[k], "matching vs shuffled prompt"))
    elif family == "quality":
        user = _user_images(images_dir)[0] if images_dir else []
        degradations = list(cases["quality"]["degradations"])
        for i in range(n):
            clean = user[i % len(user)] if user else _scene(i)
            spec = degradations[i % len(degradations)]
            prompt = Prompt(id=f"quality-{i}", text=str(cases["quality"]["prompt"]))
            raw.append((prompt, clean, degrade(clean, spec, seed=i), f"clean vs {spec['kind']}"))
    else:
        raise AutojudgeError(f"unknown validation family '{family}' ({', '.join(FAMILIES)})")
    out = []
    for i, (prompt, better, worse, label) in enumerate(raw):
        good, bad = _item(prompt, better), _item(prompt, worse)
        if i % 2 == 0:
            out.append((PairItem(prompt, good, bad), "model_a", label))
        else:
            out.append((PairItem(prompt, bad, good), "model_b", label))
    return out


@dataclass
class FamilyResult:
    judge: str
    family: str
    pairs: int = 0
    correct: int = 0
    wrong: int = 0
    ties: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    confidence: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        judged = self.correct + self.wrong + self.ties
        acc = (self.correct + 0.5 * self.ties) / judged if judged else None
        lo, hi = wilson_interval(self.correct + 0.5 * self.ties, judged, self.confidence)
        return {"judge": self.judge, "family": self.family, "pairs": self.pairs,
                "judged": judged, "correct": self.correct, "wrong": self.wrong,
                "ties": self.ties, "failed": self.failed, "failures": self.failures,
                "accuracy": None if acc is None else round(acc, 4),
                "ci_low": round(lo, 4) if judged else None,
                "ci_high": round(hi, 4) if judged else None, "confidence": self.confidence}


def families_for(judge: Any) -> tuple[str, ...]:
    """The families a judge is validated on: its plugin's `validation_families`. `judge`
    is a built plugin, a runner around one, or a config node ({"kind": ..., params})."""
    from autojudge.sdk import validation_families_of

    if isinstance(judge, dict):
        from autojudge.experiment import build
        from autojudge.sdk.registry import JUDGES
        from autojudge.stages.runner import RUNNER_KEYS

        node = {k: v for k, v in judge.items() if k not in RUNNER_KEYS}
        judge = build.build_plugin(JUDGES, "judge", str(node.get("kind")), node)
    return validation_families_of(getattr(judge, "plugin", judge), FAMILIES)


def validate(overrides: Sequence[str] = (), n: int = 20, families: Sequence[str] | None = None,
             images: str | None = None, store_root: str | None = None,
             confidence: float = 0.95, cases_path: Path = CASES,
             show_progress: bool = False) -> list[dict[str, Any]]:
    """Run every chosen judge on its validation families; one result row per (judge, family)."""
    import yaml

    from autojudge.experiment import build
    from autojudge.experiment.schema import compose
    from autojudge.experiment.pipeline import plain_config
    from autojudge.store.index import Store

    if n < 1:
        raise AutojudgeError("--n must be >= 1")
    cases = yaml.safe_load(cases_path.read_text())
    config = plain_config(compose(list(overrides)))
    images_dir = Path(images).expanduser() if images else None
    if images_dir is not None and not images_dir.is_dir():
        raise AutojudgeError(f"--images {images_dir}: not a folder")
    with tempfile.TemporaryDirectory(prefix="autojudge-validate-") as tmp:
        store = Store(store_root or tmp)
        judges = build.build_judges(config["judge"], store)
        for judge in judges.values():
            judge.check()
        rows = []
        with progress_bar(show_progress, stderr=True) as progress:
            for label, judge in judges.items():
                for family in (families or families_for(judge)):
                    triples = [t for t in build_pairs(family, n, cases, images_dir)
                               if judge.applies(t[0].prompt)]
                    task = progress.add_task(f"validate {label}/{family}", total=len(triples))
                    verdicts = []
                    for start in range(0, len(triples), 8):  # small steps: visible progress
                        chunk = [t[0] for t in triples[start:start + 8]]
                        verdicts += [tv.verdict for tv in judge.verdicts(chunk)]
                        progress.advance(task, len(chunk))
                    rows.append(_tally(label, family, triples, verdicts, confidence))
                    if judge.settings.k > 2:  # the same judge ranking k at a time
                        rows.append(_kwise_row(label, judge, family, n, cases, images_dir,
                                               triples, verdicts, confidence))
        store.close()
    return rows


def _kwise_row(label: str, judge: Any, family: str, n: int, cases: dict[str, Any],
               images_dir: Path | None, triples: list, verdicts: list, confidence: float
               ) -> dict[str, Any]:
    """The family's K-wise row (`validation_kwise`), beside the pairwise verdicts."""
    from autojudge.experiment.validation_kwise import build_groups, validate_kwise

    k = judge.settings.k
    groups = [g for g in build_groups(family, n, k, cases, images_dir) if judge.applies(g[0])]
    pairwise = {}
    for (pair, better, _), v in zip(triples, verdicts):
        pairwise[pair.prompt.id] = None if v.failure is not None or v.winner is None else \
            "tie" if v.winner.startswith("tie") else "better" if v.winner == better else "worse"
    return validate_kwise(label, judge, family, k, groups, pairwise, confidence)


def _tally(label: str, family: str, triples: list, verdicts: list, confidence: float
           ) -> dict[str, Any]:
    """One row: how many controlled pairs the judge got right, tied, wrong or failed."""
    result = FamilyResult(label, family, confidence=confidence)
    for (_, better, _), v in zip(triples, verdicts):
        result.pairs += 1
        if v.failure is not None or v.winner is None:
            result.failed += 1
            kind = v.failure.kind if v.failure else "no_winner"
            result.failures[kind] = result.failures.get(kind, 0) + 1
        elif v.winner == better:
            result.correct += 1
        elif v.winner.startswith("tie"):
            result.ties += 1
        else:
            result.wrong += 1
    return result.as_dict()


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    head = (f"{'judge':<12} {'family':<10} {'pairs':>5} {'right':>5} {'tie':>4} {'wrong':>5} "
            f"{'fail':>4} {'accuracy':>8}  CI")
    lines = [head, "-" * len(head)]
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.1%}"
        ci = "-" if r["ci_low"] is None else (f"{r['ci_low']:.1%} .. {r['ci_high']:.1%} "
                                             f"({r['confidence']:.0%} Wilson)")
        lines.append(f"{r['judge']:<12} {r['family']:<10} {r['pairs']:>5} {r['correct']:>5} "
                     f"{r['ties']:>4} {r['wrong']:>5} {r['failed']:>4} {acc:>8}  {ci}")
        if "agreement_n" in r:  # a K-wise row (validation_kwise)
            from autojudge.experiment.validation_kwise import agreement_line

            lines.append(agreement_line(r))
    return "\n".join(lines)
