"""Style-control stage: per-image style features (cached in the store by image content)
and one style-controlled board per judge (`ratings.control`, docs/statistics.md).

Features are computed once per image and kept in the store's vector cache under a
namespace that names the feature set and its formula version, so a warm run reads them
and a second judge or run on the same images never computes them again. Each judge's
controlled board uses that judge's battles whose two images have features (battles
between stored images; human votes on the run's images too), beside the plain board of
exactly those battles (`raw_rank`).

Example:
    >>> boards = style_control_boards(battles, generations, ["ocr"], ["contrast"],
    ...                               store, rating_config)             # doctest: +SKIP
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from autojudge.style import FEATURES, PIXEL_FEATURES
from autojudge.types import Battle, Generation, RankingBattle, stable_hash

log = logging.getLogger(__name__)


def features_namespace() -> str:
    """The store namespace of the pixel features: their names and formula version."""
    from autojudge.style.features import FEATURES_VERSION

    return stable_hash({"style_features": list(PIXEL_FEATURES), "version": FEATURES_VERSION})


def image_feature_table(generations: Sequence[Generation], store: Any,
                        text_areas: Mapping[str, float] | None = None
                        ) -> dict[str, np.ndarray]:
    """image sha -> its features in FEATURES order, for every stored image: the pixel
    features from the store where it has them, else computed now and stored; text_area
    from `text_areas` (sha -> the OCR judge's box coverage) where OCR read the image,
    else NaN (that image's battles then get no text_area-controlled row)."""
    from autojudge.stages.judge import image_loader
    from autojudge.style.features import image_features

    started = time.perf_counter()
    by_sha = {g.image_sha: g for g in generations if g.ok}
    namespace = features_namespace()
    table = {sha: np.asarray(v, np.float64)
             for sha, v in store.get_embeddings(namespace, list(by_sha)).items()}
    fresh: dict[str, np.ndarray] = {}
    for sha, generation in by_sha.items():
        if sha in table:
            continue
        try:
            image = image_loader(store, generation)()
        except Exception as exc:  # a damaged blob: its battles get no controlled row
            log.warning("style features: image %s of %s unreadable (%s)", sha[:12],
                        generation.model, type(exc).__name__)
            continue
        values = image_features(image)
        fresh[sha] = np.array([values[name] for name in PIXEL_FEATURES], np.float64)
    if fresh:
        store.put_embeddings(namespace, {sha: v.astype(np.float32) for sha, v in fresh.items()})
        table.update({sha: v.astype(np.float32).astype(np.float64) for sha, v in fresh.items()})
    log.info("style features: %d images from the store, %d computed in %.3f s",
             len(table) - len(fresh), len(fresh), time.perf_counter() - started)
    areas = text_areas or {}
    return {sha: np.append(v, float(areas.get(sha, np.nan))) for sha, v in table.items()}


def ocr_text_areas(score_rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """image sha -> text_area from OCR score rows (`JudgeRunner.score_rows` of a judge of
    kind ocr); scores cached before OCR recorded it have none."""
    out = {}
    for row in score_rows:
        area = (row.get("raw") or {}).get("text_area")
        if isinstance(area, (int, float)) and row.get("image_sha256"):
            out[row["image_sha256"]] = float(area)
    return out


def with_features(battles: Sequence[Battle], generations: Sequence[Generation],
                  table: Mapping[str, np.ndarray]) -> list[Battle]:
    """The battles, each carrying both images' features (`features_a`, `features_b`)
    where both images have them, so the log can be rated with `rate --control` and gated
    with `gate --control`; a feature an image lacks (text_area where OCR did not run) is
    left out of that side's mapping."""
    image_of = {(g.model, g.prompt.id, g.seed): g.image_sha for g in generations if g.ok}

    def named(values: np.ndarray) -> tuple[tuple[str, float], ...]:
        return tuple((name, round(float(v), 6)) for name, v in zip(FEATURES, values)
                     if np.isfinite(v))

    out = []
    for b in battles:
        if isinstance(b, RankingBattle):  # a K-wise row: each model's image
            shas = [image_of.get((m, b.prompt_id, b.seed)) for m in b.models]
            if all(sha in table for sha in shas):
                b = replace(b, features=tuple((m, named(table[sha]))
                                              for m, sha in zip(b.models, shas)))
            out.append(b)
            continue
        sha_a = image_of.get((b.model_a, b.prompt_id, b.seed))
        sha_b = image_of.get((b.model_b, b.prompt_id, b.seed))
        if sha_a in table and sha_b in table:
            b = replace(b, features_a=named(table[sha_a]), features_b=named(table[sha_b]))
        out.append(b)
    return out


def style_control_boards(battles: Sequence[Battle], generations: Sequence[Generation],
                         judges: Sequence[str], features: Sequence[str], store: Any,
                         config: Any, boards: Sequence[Mapping[str, Any]] = (),
                         table: Mapping[str, np.ndarray] | None = None
                         ) -> list[dict[str, Any]]:
    """One controlled board per judge (autojudge.results.ControlledBoard as a dict); []
    when no feature is asked for. `boards`: the run's plain boards, whose whole-suite
    board of a judge is reused as the raw side when every battle of it has features
    (rating the same battles twice would cost a second bootstrap). `table`: the
    `image_feature_table` when the caller has it (else built here, without text_area)."""
    if not features:
        return []
    plain = {b["judge"]: b["models"] for b in boards if b["tag"] is None}
    table = image_feature_table(generations, store) if table is None else table
    image_of = {(g.model, g.prompt.id, g.seed): g.image_sha for g in generations if g.ok}
    columns = [FEATURES.index(name) for name in features]
    return [_judge_board(judge, [b for b in battles if b.judge == judge], image_of, table,
                         list(features), columns, config, plain.get(judge))
            for judge in judges]


def _judge_board(judge: str, battles: Sequence[Battle], image_of: Mapping[tuple, str],
                 table: Mapping[str, np.ndarray], features: list[str], columns: list[int],
                 config: Any, plain_rows: Sequence[dict] | None) -> dict[str, Any]:
    from autojudge.ratings import rate_encoded
    from autojudge.ratings.bootstrap import cluster_codes
    from autojudge.ratings.bradley_terry import encode_battles
    from autojudge.ratings.style_control import controlled_board

    kept, xa, xb = [], [], []
    for b in battles:
        sha_a = image_of.get((b.model_a, b.prompt_id, b.seed))
        sha_b = image_of.get((b.model_b, b.prompt_id, b.seed))
        if sha_a in table and sha_b in table and np.all(np.isfinite(table[sha_a][columns])) \
                and np.all(np.isfinite(table[sha_b][columns])):
            kept.append(b)
            xa.append(table[sha_a][columns])
            xb.append(table[sha_b][columns])
    board: dict[str, Any] = {"judge": judge, "features": features, "n_battles": len(kept)}
    if not kept:
        what = ("OCR read (text_area comes from an ocr judge's boxes)"
                if "text_area" in features else "features")
        return {**board, "note": f"not computed: no battle of this judge has both images "
                                 f"with {what}"}
    encoded = encode_battles([b.model_a for b in kept], [b.model_b for b in kept],
                             [b.winner for b in kept])
    clusters = cluster_codes([b.prompt_id for b in kept], len(kept))
    rated = {row["model"] for row in plain_rows or ()}
    rows = [row for row in plain_rows or () if row["model"] in encoded.names]
    if len(kept) != len(battles) or not set(encoded.names) <= rated:
        rows = rate_encoded(encoded, clusters, config)  # a subset: rate exactly it
    result = controlled_board(rows, encoded.names, encoded.ia, encoded.ib, encoded.score,
                              np.array(xa), np.array(xb), features, clusters, config)
    return {**board, **result}
