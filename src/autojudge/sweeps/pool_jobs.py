"""The finished runs `autojudge.compare` pools: their configs, images and model labels.

Two jobs' models are the same model when their config nodes are equal (same generator,
same settings: same cached images), whatever the jobs were; models that share a label
but differ get distinct labels, from the job's swept overrides where they name the
model (`typeset[max_font_size=24]` from `model.typeset.max_font_size=24`), else from
the settings that differ, else from the job folder's name.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from autojudge.errors import AutojudgeError
from autojudge.report.rundata import CONFIG_FILE, read_jsonl
from autojudge.sweeps.jobs import swept_params
from autojudge.sweeps.variants import expand_variants, variant_label


@dataclass
class Job:
    """One finished run to pool.

    Attributes:
        run_dir: its folder.
        config: the resolved config it ran with (config.json, else .hydra/config.yaml).
        document: its leaderboard.json.
        generations: rows of its generations.jsonl.
        swept: its values of the swept parameters ({} outside a sweep).
    """

    run_dir: Path
    config: dict[str, Any]
    document: dict[str, Any]
    generations: list[dict[str, Any]]
    swept: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> dict[str, Any]:
        return dict(self.config.get("model") or {})


def load_job(run_dir: Path) -> Job:
    """Read one finished run (one line naming the file for anything missing)."""
    board = run_dir / "leaderboard.json"
    if not board.is_file():
        raise AutojudgeError(f"{run_dir} is not finished (no leaderboard.json); run that job "
                             "again, or pass the finished jobs by name")
    from autojudge.results import read_leaderboard

    try:
        document = read_leaderboard(board).to_dict()
    except AutojudgeError as exc:
        raise AutojudgeError(f"{exc}; run that job again") from None
    generations = read_jsonl(run_dir / "generations.jsonl")
    if not generations:
        raise AutojudgeError(f"{run_dir} has no generations.jsonl rows: nothing to pool; "
                             "run that job again")
    return Job(run_dir, job_config(run_dir), document, generations, swept_params(run_dir))


def job_config(run_dir: Path) -> dict[str, Any]:
    """The config a run used: config.json (written by every run), else Hydra's
    .hydra/config.yaml, resolved and with sweep variants expanded."""
    path = run_dir / CONFIG_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise AutojudgeError(f"{path}: unreadable ({exc}); run that job again") from None
    hydra = run_dir / ".hydra" / "config.yaml"
    if not hydra.is_file():
        raise AutojudgeError(f"{run_dir} has neither config.json nor .hydra/config.yaml, so "
                             "its models and judges are unknown; run that job again")
    from omegaconf import OmegaConf

    try:
        config = OmegaConf.to_container(OmegaConf.load(hydra), resolve=True)
    except Exception as exc:  # an interpolation that no longer resolves, say
        raise AutojudgeError(f"{hydra}: cannot be resolved ({str(exc).splitlines()[0]}); "
                             "run that job again") from None
    config["model"] = expand_variants(config.get("model") or {},
                                      (config.get("sweep") or {}).get("variants"))
    return config


def job_requests(job: Job) -> list[tuple[Any, int]]:
    """The (prompt, seed) requests the job's run generated, in suite order: those of its
    generations.jsonl, the run's own record of what it chose by its rule (suite.tags and
    exclude_tags; with suite.only_judged only prompts one of its judges applies to; then
    suite.limit), with each prompt as its suite file holds it. Re-applying the filters
    here could choose other prompts (judges' applicability, a pooled folder's several
    sources). One line when the file no longer holds one of them."""
    from omegaconf import OmegaConf

    from autojudge.experiment import build

    used = {(str(row["prompt_id"]), int(row["seed"])) for row in job.generations}
    whole = {**job.config["suite"], "tags": [], "exclude_tags": [], "limit": None}
    chosen = [(prompt, seed) for prompt, seed in
              build.load_suite_from_config(OmegaConf.create(whole)).requests()
              if (prompt.id, seed) in used]
    missing = sorted(used - {(prompt.id, seed) for prompt, seed in chosen})
    if missing:
        raise AutojudgeError(
            f"{job.run_dir}: {len(missing)} of its (prompt, seed) requests are not in its "
            f"suite {job.config['suite']['path']} any more (e.g. prompt {missing[0][0]!r}, "
            f"seed {missing[0][1]}): the suite changed since the run; pool runs of the suite "
            "as it is, or run that job again")
    return chosen


def canonical(node: Any) -> str:
    return json.dumps(node, sort_keys=True, default=str)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, Mapping)
                   else {f"{prefix}{key}": value})
    return out


def pool_models(jobs: Sequence[Job]) -> tuple[dict[str, Any], dict[tuple[int, str], str]]:
    """(pooled label -> config node in pooled order, (job index, job label) -> pooled
    label). Variants of one label sit together, in job order."""
    by_label: dict[str, dict[str, list[int]]] = {}
    nodes: dict[str, Any] = {}
    for i, job in enumerate(jobs):
        for label, node in job.models.items():
            key = canonical(node)
            by_label.setdefault(label, {}).setdefault(key, []).append(i)
            nodes[key] = node
    pooled: dict[str, Any] = {}
    mapping: dict[tuple[int, str], str] = {}
    # node -> (pooled label, jobs): equal configs from different jobs are one model however
    # they were labelled (an A/A copy inside one job stays two models, as in its run)
    named: dict[str, tuple[str, set[int]]] = {}
    for label, variants in by_label.items():
        names = _variant_names(label, variants, nodes, jobs)
        for key, job_indices in variants.items():
            name, seen = named.get(key, (names[key], set()))
            if seen & set(job_indices):
                name = names[key]
            named[key] = (name, seen | set(job_indices))
            pooled.setdefault(name, nodes[key])
            for i in job_indices:
                mapping[(i, label)] = name
    return pooled, mapping


def _variant_names(label: str, variants: Mapping[str, list[int]], nodes: Mapping[str, Any],
                   jobs: Sequence[Job]) -> dict[str, str]:
    if len(variants) == 1:
        return {key: label for key in variants}
    prefix = f"model.{label}."
    names: dict[str, str] = {}
    for key, job_indices in variants.items():
        swept = jobs[job_indices[0]].swept
        params = [(k[len(prefix):], v) for k, v in swept.items() if k.startswith(prefix)]
        names[key] = variant_label(label, params) if params else ""
    if "" in names.values() or len(set(names.values())) < len(names):
        flat = {key: flatten(nodes[key]) for key in variants}
        keys = sorted({k for f in flat.values() for k in f})
        differ = [k for k in keys if len({canonical(f.get(k)) for f in flat.values()}) > 1]
        names = {key: variant_label(label, [(k, flat[key].get(k)) for k in differ])
                 for key in variants}
    if len(set(names.values())) < len(names):
        names = {key: f"{names[key]}@{jobs[variants[key][0]].run_dir.name}" for key in variants}
    return names


def pool_judges(jobs: Sequence[Job]) -> dict[str, Any]:
    """judge label -> config node; one line when jobs judged with different settings."""
    judges: dict[str, tuple[Any, Path]] = {}
    for job in jobs:
        for label, node in (job.config.get("judge") or {}).items():
            if label not in judges:
                judges[label] = (node, job.run_dir)
                continue
            first, where = judges[label]
            if canonical(first) != canonical(node):
                a, b = flatten(first), flatten(node)
                diff = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
                raise AutojudgeError(
                    f"judge {label} is set up differently in {where} and {job.run_dir} "
                    f"({diff}: {a.get(diff)!r} vs {b.get(diff)!r}); compare pools runs "
                    "judged the same way: pool those jobs separately")
    return {label: node for label, (node, _) in judges.items()}


def shared_store(jobs: Sequence[Job], given: str | None) -> str:
    """The one store every job used (or `given`); one line when they differ."""
    if given:
        return given
    roots = {str(job.document.get("run", {}).get("store") or "") for job in jobs}
    roots.discard("")
    if len(roots) != 1:
        raise AutojudgeError("the runs used different stores (" + ", ".join(sorted(roots))
                             + "); compare reads every image and score from one store: "
                             "pass --store PATH" if roots else
                             "the runs do not say which store they used; pass --store PATH")
    return roots.pop()


# Only generators that declare `cheap_to_remake` (the SDK hook: the baselines render an
# image again, a folder model reads its file again, for nothing and with the same bytes)
# re-make a damaged stored image. Any other model's (fal, diffusers, a plugin) is never
# re-made by compare: that may cost money or need a GPU; compare says how to get it back.
DAMAGED = "damaged_image"  # the failure kind of an image the store lost


@dataclass
class ImageCheck:
    """The stored images of the pooled generations, checked before any judging.

    Attributes:
        remade: damaged in the store, made again by their model (the very same bytes,
            so every cached score still holds) and stored again.
        damaged: (generation, why it was not re-made): their battles are skipped.
    """

    remade: list[Any] = field(default_factory=list)
    damaged: list[tuple[Any, str]] = field(default_factory=list)


def check_images(generations: Sequence[Any], nodes: Mapping[str, Any], store: Any
                 ) -> ImageCheck:
    """Hash every pooled image in the store (once per Store); re-make the damaged ones
    whose model can (its generator is `cheap_to_remake`)."""
    bad: dict[str, list[Any]] = {}
    for g in generations:
        if g.ok and store.verified_blob(g.image_sha, _ext(g)) is None:
            bad.setdefault(g.model, []).append(g)
    check = ImageCheck()
    for model, gens in bad.items():
        check.damaged.extend(_remake(model, nodes.get(model) or {}, gens, store,
                                     check.remade))
    return check


def _cheap_to_remake(kind: str) -> bool:
    from autojudge import sdk
    from autojudge.sdk.registry import GENERATORS

    try:
        return sdk.cheap_to_remake(GENERATORS.get(kind))
    except Exception:  # an unknown or broken plugin: never re-made, the image stays damaged
        return False


def _remake(model: str, node: Mapping[str, Any], gens: list[Any], store: Any,
            remade: list[Any]) -> list[tuple[Any, str]]:
    """Make `gens` again with their model; returns those still damaged, each with why
    it could not be re-made (and appends the others to `remade`)."""
    from autojudge.experiment import build
    from autojudge.sdk.registry import GENERATORS
    from autojudge.types import GenRequest

    kind = str(node.get("kind"))
    if not _cheap_to_remake(kind):
        return [(g, f"a {kind} model's images are not made again by compare (it may cost "
                    f"money or need a GPU)") for g in gens]
    try:
        generator = build.build_plugin(GENERATORS, "model", model, dict(node))
        generator.check()
        outputs = generator.generate([GenRequest(g.prompt, g.seed) for g in gens])
        if len(outputs) != len(gens):
            raise ValueError(f"returned {len(outputs)} images for {len(gens)} requests")
    except Exception as exc:  # a folder that is gone, say: the image stays damaged
        message = " ".join(str(exc).split())[:200]
        return [(g, f"re-making it failed ({type(exc).__name__}: {message})") for g in gens]
    damaged = []
    for g, out in zip(gens, outputs):
        if out.image is None:
            failure = out.failure.message if out.failure else "no image"
            damaged.append((g, f"re-making it failed ({failure})"))
        elif hashlib.sha256(out.image).hexdigest() != g.image_sha:
            damaged.append((g, "its model now makes a different image (its source changed "
                               "since the run), so the run's image cannot be restored"))
        else:
            store.put_blob(out.image)  # rewrites the damaged file with the run's bytes
            remade.append(g)
    return damaged


def mark_damaged(generations: Sequence[Any], check: ImageCheck, jobs: Sequence[Job],
                 mapping: Mapping[tuple[int, str], str], skipped: Sequence[Mapping[str, Any]],
                 store: Any) -> tuple[list[Any], dict[str, Any]]:
    """(`generations` with each image still damaged turned into a `damaged_image`
    failure that says how to get it back, the pooled document's `run.images`)."""
    from dataclasses import replace

    from autojudge.types import Failure

    why = {id(g): reason for g, reason in check.damaged}
    root, out, damaged, runs = store.root, [], [], []
    for g in generations:
        reason = why.get(id(g))
        if reason is not None:
            run = str(_made_by(jobs, mapping, g))
            runs += [run] if run not in runs else []
            where = store.blob_location(g.image_sha, _ext(g))  # the one in *this* store
            g = replace(g, failure=Failure(DAMAGED, f"stored image {where} is damaged "
                                                    f"({reason}); {_fix(root, [run])}"))
            damaged.append({**_where(g), "stored": where, "why": reason, "run_dir": run})
        out.append(g)
    summary = {"remade": [_where(g) for g in check.remade], "damaged": damaged,
               "battles_skipped": sum(1 for r in skipped if r.get("failure_kind") == DAMAGED),
               "fix": _fix(root, runs) if damaged else None}
    return out, summary


def _fix(root: Path, runs: Sequence[str]) -> str:
    from autojudge.store.index import store_command

    return (f"run {store_command(root)}, then the command that made {', '.join(runs)} again "
            f"(.hydra/overrides.yaml in the run folder; only the damaged images are "
            f"generated again) and pool the new run folder")


def _ext(g: Any) -> str:
    return Path(g.image_path or "").suffix[1:]


def _where(g: Any) -> dict[str, Any]:
    return {"model": g.model, "prompt_id": g.prompt.id, "seed": g.seed,
            "image_path": g.image_path}


def _made_by(jobs: Sequence[Job], mapping: Mapping[tuple[int, str], str], g: Any) -> Path:
    """The run folder whose generation `g` is (the first job that has it, as pooled)."""
    for i, job in enumerate(jobs):
        for row in job.generations:
            if (mapping.get((i, row["model"])) == g.model and row["prompt_id"] == g.prompt.id
                    and int(row["seed"]) == g.seed):
                return job.run_dir
    return jobs[0].run_dir


def image_lines(summary: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(lines for stdout, warnings for stderr) about the store's damaged images."""
    def name(row: Mapping[str, Any]) -> str:
        return f"{row['model']} {row['prompt_id']} seed {row['seed']}"

    info, warnings = [], []
    remade = summary.get("remade") or []
    if remade:
        info.append(f"images: {len(remade)} damaged in the store, made again by their model "
                    f"(the same bytes): " + ", ".join(name(r) for r in remade[:5])
                    + (" ..." if len(remade) > 5 else ""))
    damaged = summary.get("damaged") or []
    if damaged:
        warnings.append(f"warning: {len(damaged)} stored image(s) damaged and not made "
                        f"again: {summary['battles_skipped']} battle(s) skipped; counted as "
                        f"failed images ({DAMAGED}) in the models table")
        warnings += [f"  {name(r)}: {r['stored']} ({r['why']})" for r in damaged[:10]]
        if len(damaged) > 10:
            warnings.append(f"  ... and {len(damaged) - 10} more (generations.jsonl)")
        warnings.append(f"  fix: {summary['fix']}")
    return info, warnings
