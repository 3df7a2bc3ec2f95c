"""A hand-made finished run with every case the report must draw honestly: a separated
model (open CI side), a model whose images all failed (unrated, with the reason), two
groups never linked by battles (a disconnected board), a model name and a prompt that
are HTML (`<script>alert(1)</script>`), a pointwise judge and a pairwise one."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from autojudge.ratings import RatingConfig
from autojudge.report.files import leaderboard_document, write_run_files
from autojudge.report.html import write_config
from autojudge.report.rundata import write_prompts
from autojudge.stages.agreement import compute_agreement
from autojudge.stages.boards import BoardSpec, RunFacts, build_boards, model_stats
from autojudge.store.index import Store
from autojudge.types import Battle, Failure, Generation, Prompt

XSS = "<script>alert(1)</script>"
FONT_SIZES = (4, 6, 24)
# small images and few prompts: OCR at 256 px takes ~0.25 s an image on two cores
TYPESET_SMALL = ["model.typeset.width=256", "model.typeset.height=256",
                 "model.typeset.min_font_size=2"]
SUITE_SMALL = ["suite.tags=[text_rendering]", "suite.limit=4", "ratings.bootstrap_rounds=100",
               "progress=false"]
MODELS = ["alpha", "beta", "gamma<b>", "delta", "eps", "zeta"]
GROUP_A, GROUP_B = ["alpha", "beta", "gamma<b>"], ["eps", "zeta"]
# (model -> quality): the pointwise judge's score; alpha is best on every prompt
QUALITY = {"alpha": 0.9, "beta": 0.5, "gamma<b>": 0.45, "eps": 0.6, "zeta": 0.55}


def _png(color: tuple[int, int, int], text: str) -> bytes:
    image = Image.new("RGB", (96, 64), color)
    ImageDraw.Draw(image).text((4, 24), text, fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def prompts(n: int = 6) -> list[Prompt]:
    out = [Prompt(id="xss", text=f"A sign that reads {XSS} & more", tags=("text", "html"),
                  category="text", expected_text=XSS)]
    out += [Prompt(id=f"p{i}", text=f"prompt number {i}", tags=("text" if i % 2 else "scene",),
                   category="scene") for i in range(1, n)]
    return out


def _generations(store: Store, items: list[Prompt]) -> list[Generation]:
    gens = []
    for m_index, model in enumerate(MODELS):
        for p_index, prompt in enumerate(items):
            if model == "delta":
                gens.append(Generation(model, prompt, 0, None, None, 0.1, 0.0,
                                       Failure("timeout", "took too long")))
                continue
            sha, ext = store.put_blob(_png((40 * m_index % 255, 200, 30 * p_index % 255),
                                           f"{model} {prompt.id}"))
            gens.append(Generation(model, prompt, 0, sha, str(store.blob_path(sha, ext)),
                                   0.05 * (m_index + 1) + 0.01 * p_index, 0.002 * m_index))
    return gens


def _battles(items: list[Prompt]) -> tuple[list[Battle], list[dict[str, Any]]]:
    battles, scores = [], []
    for k, prompt in enumerate(items):
        for group in (GROUP_A, GROUP_B):
            for i, a in enumerate(group):
                for b in group[i + 1:]:
                    # deterministic wobble so beta/gamma and eps/zeta are not separated
                    sa = QUALITY[a] + (0.2 if (k + i) % 3 == 0 and a != "alpha" else 0)
                    sb = QUALITY[b] + (0.2 if (k + i) % 3 == 1 and a != "alpha" else 0)
                    winner = "model_a" if sa > sb else "model_b" if sb > sa else "tie"
                    battles.append(Battle(a, b, winner, "fake", prompt.id, 0, prompt.tags,
                                          sa, sb, f"fake score {sa:.2f} vs {sb:.2f} {XSS}"))
                    vote = "model_a" if (k + i) % 2 else winner
                    battles.append(Battle(a, b, vote, "pair", prompt.id, 0, prompt.tags,
                                          None, None, f"pairwise says {vote}"))
        for model, q in QUALITY.items():
            scores.append({"judge": "fake", "model": model, "prompt_id": prompt.id, "seed": 0,
                           "image_sha256": None, "score": q, "raw": {}, "failure_kind": None,
                           "tstamp": 0.0})
    return battles, scores


def make_run(run_dir: Path, store_root: Path, n_prompts: int = 6) -> Path:
    """Write the hand-made run (see the module docstring) and return its folder."""
    items = prompts(n_prompts)
    with Store(store_root) as store:
        gens = _generations(store, items)
    battles, scores = _battles(items)
    skipped = [{"judge": j, "prompt_id": p.id, "seed": 0, "model_a": "alpha",
                "model_b": "delta", "failure_kind": "timeout", "failure_message": "took too long"}
               for j in ("fake", "pair") for p in items]
    rating = RatingConfig(bootstrap_rounds=60, seed=0)
    boards = build_boards(battles, MODELS, ["fake", "pair"], BoardSpec(rating, 3, 5),
                          RunFacts(gens, skipped, {"fake": len(items), "pair": len(items)}))
    run = {"name": "handmade", "suite": "handmade", "models": MODELS, "judges": ["fake", "pair"],
           "n_prompts": len(items), "n_requests": len(items), "seeds": [0],
           "n_battles": len(battles), "n_skipped": len(skipped),
           "ratings": {"bootstrap_rounds": 60, "seed": 0, "confidence": 0.95},
           "notes": [f"a note with {XSS}"], "store": str(store_root),
           "cache": {"generation": {"cached": 0, "computed": len(gens), "failed": len(items)},
                     "judges": {"fake": {"cached": 0, "computed": 30, "failed": 0}}}}
    document = leaderboard_document(run, boards, model_stats(gens, MODELS),
                                    compute_agreement(battles, boards, ["fake", "pair"],
                                                      rating, rounds=50))
    write_run_files(run_dir, document, battles, gens, scores, skipped)
    write_prompts(run_dir, items)
    write_config(run_dir, {"name": "handmade", "store": {"root": str(store_root)},
                           "report": {"thumbnail_px": 96, "max_prompts": 50,
                                      "per_tag_min_prompts": 3}})
    return run_dir
