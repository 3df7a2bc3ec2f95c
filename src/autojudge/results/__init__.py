"""The results contract: `leaderboard.json`, typed, with one writer and one reader.

A finished run (and `compare`'s pooled run) writes one `Leaderboard`:

- `run` (`RunInfo`): what was run: suite, models, judges, counts, rating settings,
  schedules, cache counts, notes, the sweep objective;
- `boards` (`Board`): one per judge and tag, then the overall board `judge: "all"`; each
  holds one `BoardRow` per model, rated models first (by component, then rating), unrated
  models last with `unrated_reason`;
- `models` (`ModelStats`): per model images, failures, latency percentiles and cost;
- `agreement` (`AgreementRow`): one row per pair of judges;
- `style_control` (`ControlledBoard`): with `ratings.control` set, one board per judge
  with those image features held fixed, and what the judge rewards (`StyleCoefficient`).

`Leaderboard.to_dict()` writes exactly the keys below in this order, so the file is
stable across versions apart from keys a later version adds; `read_leaderboard` refuses
a file that is not a leaderboard (one `AutojudgeError` line) and keeps any key it does not
know in `extra`, so a file written by a newer version reads and re-writes without loss.
The JSON Schema of the file is shipped as `autojudge/leaderboard.schema.json` and is
generated from these classes (`json_schema()`); docs/results.md describes each field.

Example:
    >>> board = Board(judge="ocr", tag=None, n_battles=0, n_prompts=0, connected=True,
    ...               n_components=0, n_rated=0, n_unrated=0, models=[])
    >>> Board.from_dict(board.to_dict()) == board
    True
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from autojudge.errors import AutojudgeError

LEADERBOARD_SCHEMA = 1
SCHEMA_FILE = Path(__file__).with_name("leaderboard.schema.json")


class _Record:
    """A dataclass read from and written to a JSON object: known keys become fields, the
    rest go to `extra` and are written back after them."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> Any:
        if not isinstance(data, Mapping):
            raise AutojudgeError(f"{where or cls.__name__}: expected an object, got "
                                 f"{type(data).__name__}")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls) if f.name != "extra"}
        missing = [f.name for f in dataclasses.fields(cls) if f.name in _required(cls)
                   and f.name not in data]
        if missing:
            raise AutojudgeError(f"{where or cls.__name__}: missing {', '.join(missing)}")
        values = {k: _read(hints[k], v, f"{where}.{k}" if where else k)
                  for k, v in data.items() if k in known}
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _write(value)
        out.update(self.extra)  # type: ignore[attr-defined]
        return out


def _required(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


def _read(hint: Any, value: Any, where: str) -> Any:
    """`value` as `hint` says: nested records and lists of records are built, plain JSON
    values are type-checked where the contract is a scalar."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)] or (Any,)
        return _read(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, _Record):
        return hint.from_dict(value, where)
    if origin is list:
        if not isinstance(value, list):
            raise AutojudgeError(f"{where}: expected a list, got {type(value).__name__}")
        return [_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is dict and not isinstance(value, dict):
        raise AutojudgeError(f"{where}: expected an object, got {type(value).__name__}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if hint in (int, str, bool) and not (isinstance(value, hint)
                                         and (hint is bool or not isinstance(value, bool))):
        raise AutojudgeError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _write(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_write(v) for v in value]
    return value


def _omit_none() -> Any:
    return field(default=None, metadata={"omit_none": True})


@dataclass
class BoardRow(_Record):
    """One model on one board. `rating`, `ci_low`, `ci_high`: Elo-scale Bradley-Terry
    rating and its interval (None: no rating, or a side the data did not bound); `rank`:
    CI-aware rank within its component (None: unrated or no bootstrap)."""

    model: str
    rating: Optional[float]
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    rank: Optional[int] = None
    elo: Optional[float] = None
    battles: int = 0
    wins: int = 0
    losses: int = 0
    ties: int = 0
    separated: bool = False
    component: Optional[int] = None
    ci_method: Optional[str] = None
    unrated_reason: Optional[str] = None
    provisional: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def rated(self) -> bool:
        return self.rating is not None

    @property
    def win_rate(self) -> float | None:
        """Wins plus half the ties, over battles (None with no battles)."""
        if not self.battles:
            return None
        return round((self.wins + 0.5 * self.ties) / self.battles, 4)


@dataclass
class Board(_Record):
    """One judge (or "all", the overall board) on the whole suite (`tag` None) or a tag.
    `connected`: every rated model is linked to every other by battles; when False,
    ratings compare only within a `component`."""

    judge: str
    tag: Optional[str]
    models: list[BoardRow]
    n_battles: int = 0
    n_prompts: int = 0
    connected: bool = True
    n_components: int = 0
    n_rated: int = 0
    n_unrated: int = 0
    method: str = "bt"
    definition: Optional[dict] = _omit_none()  # the overall board's pooling rule
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> Any:
        board = super().from_dict(data, where)
        if not all(k in data for k in ("connected", "n_components", "n_rated", "n_unrated")):
            board._derive_structure()  # a run older than these keys: from its rows
        return board

    def _derive_structure(self) -> None:
        components = {r.component for r in self.models if r.component is not None}
        rated = sum(1 for r in self.models if r.rated)
        if rated and not components:  # rows without components: one per linked rating
            components = {0}
        self.connected, self.n_components = len(components) <= 1, len(components)
        self.n_rated, self.n_unrated = rated, len(self.models) - rated

    def to_dict(self) -> dict[str, Any]:
        # the order the file has always had: method after tag, models before definition
        out = super().to_dict()
        keys = ["judge", "tag", "method", "n_battles", "n_prompts", "connected",
                "n_components", "n_rated", "n_unrated", "models"]
        return {**{k: out.pop(k) for k in keys}, **out}

    @property
    def overall(self) -> bool:
        return self.judge == "all"

    def row(self, model: str) -> BoardRow | None:
        return next((r for r in self.models if r.model == model), None)


@dataclass
class ModelStats(_Record):
    """A model's generations: images made, failures (by kind), latency and cost."""

    model: str
    images: int = 0
    failed: int = 0
    failure_rate: float = 0.0
    failures: dict = field(default_factory=dict)
    latency_p50_s: Optional[float] = None
    latency_p95_s: Optional[float] = None
    cost_usd: float = 0.0
    cost_per_image_usd: Optional[float] = None
    queue_wait_p50_s: Optional[float] = None
    queue_wait_p95_s: Optional[float] = None
    inference_p50_s: Optional[float] = None
    inference_p95_s: Optional[float] = None
    nsfw: Optional[int] = None
    extra: dict = field(default_factory=dict)


@dataclass
class AgreementRow(_Record):
    """Two judges on their shared battles: agreement with its CI, decisive-only agreement,
    Cohen's kappa, and the rank correlation of their whole-suite boards."""

    judge_a: str
    judge_b: str
    n_shared: int = 0
    agreement: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    kappa: Optional[float] = None
    n_prompts: int = 0
    decisive_agreement: Optional[float] = None
    n_decisive: float = 0.0
    n_models: int = 0
    kendall_tau: Optional[float] = None
    spearman: Optional[float] = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        keys = ["judge_a", "judge_b", "n_shared", "n_prompts", "agreement", "ci_low",
                "ci_high", "decisive_agreement", "n_decisive", "kappa", "n_models",
                "kendall_tau", "spearman"]
        return {**{k: out.pop(k) for k in keys}, **out}


@dataclass
class ControlledRow(_Record):
    """One model on a style-controlled board; `raw_rank` is its rank on the plain board of
    the same battles, `rank_change` = raw_rank - rank (positive: moved up)."""

    model: str
    rating: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    rank: Optional[int] = None
    raw_rank: Optional[int] = None
    rank_change: Optional[int] = None
    battles: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class StyleCoefficient(_Record):
    """What a judge rewards: Elo per standard deviation `sd` of one feature, with its CI."""

    feature: str
    elo_per_sd: float
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    sd: float = 0.0
    extra: dict = field(default_factory=dict)


@dataclass
class ControlledBoard(_Record):
    """One judge's board with the `features` held fixed (docs/statistics.md), over the
    `n_battles` battles whose images have every feature. `note` says why there are no
    rows (e.g. a disconnected battle graph); `dropped` names features left out, and why."""

    judge: str
    features: list[str] = field(default_factory=list)
    n_battles: int = 0
    rows: list[ControlledRow] = field(default_factory=list)
    coefficients: list[StyleCoefficient] = field(default_factory=list)
    dropped: dict = field(default_factory=dict)
    note: Optional[str] = None
    extra: dict = field(default_factory=dict)


def _rating_default(name: str) -> Any:
    from autojudge.experiment.schema import RatingsConfig

    return getattr(RatingsConfig(), name)


@dataclass
class RatingsInfo(_Record):
    """The rating settings every board of the run was computed with."""

    # a run that did not record a setting used its default: the settings schema's
    bootstrap_rounds: int = field(default_factory=lambda: _rating_default("bootstrap_rounds"))
    seed: int = field(default_factory=lambda: _rating_default("seed"))
    confidence: float = field(default_factory=lambda: _rating_default("confidence"))
    prior: Optional[float] = None  # None: an older run that did not record it
    anchor: Optional[str] = None
    cluster: str = "prompt_id"
    extra: dict = field(default_factory=dict)


@dataclass
class RunInfo(_Record):
    """What was run. `cache` counts what came from the store vs new per stage; `objective`
    is the sweep objective (None without one); `compare` lists the pooled runs."""

    name: str = ""
    models: list[str] = field(default_factory=list)
    judges: list[str] = field(default_factory=list)
    suite: Optional[str] = None
    suite_path: Optional[str] = None
    n_prompts: int = 0
    n_requests: int = 0
    seeds: list[int] = field(default_factory=list)
    n_battles: int = 0
    n_skipped: int = 0
    ratings: RatingsInfo = field(default_factory=RatingsInfo)
    schedule: str = "all_pairs"
    schedules: dict = field(default_factory=dict)
    human_votes: Optional[dict] = None
    judge_stats: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    store: Optional[str] = None
    compare: Optional[dict] = _omit_none()
    cache: Optional[dict] = None
    wall_s: Optional[float] = None
    objective: Optional[dict] = None
    images: Optional[dict] = _omit_none()
    extra: dict = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        return float(self.ratings.confidence)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        keys = ["name", "suite", "suite_path", "models", "judges"]
        return {**{k: out.pop(k) for k in keys}, **out}


@dataclass
class Leaderboard(_Record):
    """The whole `leaderboard.json`."""

    run: RunInfo
    boards: list[Board] = field(default_factory=list)
    models: list[ModelStats] = field(default_factory=list)
    agreement: list[AgreementRow] = field(default_factory=list)
    style_control: list[ControlledBoard] = field(default_factory=list)
    schema: int = LEADERBOARD_SCHEMA
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        return {"schema": out.pop("schema"), **out}

    def board(self, judge: str, tag: str | None = None) -> Board | None:
        return next((b for b in self.boards if b.judge == judge and b.tag == tag), None)

    def stats(self, model: str) -> ModelStats | None:
        return next((m for m in self.models if m.model == model), None)


def leaderboard(run: Mapping[str, Any], boards: list[Mapping[str, Any]],
                models: list[Mapping[str, Any]],
                agreement: Sequence[Mapping[str, Any]] = (),
                style_control: Sequence[Mapping[str, Any]] = ()) -> Leaderboard:
    """The one constructor of a run's leaderboard, from the stages' plain rows."""
    return Leaderboard.from_dict({"schema": LEADERBOARD_SCHEMA, "run": dict(run),
                                  "boards": list(boards), "models": list(models),
                                  "agreement": [dict(a) for a in agreement],
                                  "style_control": [dict(b) for b in style_control]})


def run_info(rating: Any, requests: Sequence[tuple[Any, int]], **fields: Any
             ) -> dict[str, Any]:
    """The one constructor of the `run` section, for a run and for `compare`: the rating
    settings (a `RatingConfig`) and the request counts are derived here, every other field
    of `RunInfo` is named (an unknown name is a TypeError, not a silent new key)."""
    ratings = RatingsInfo(bootstrap_rounds=int(rating.bootstrap_rounds), seed=int(rating.seed),
                          confidence=float(rating.confidence), prior=rating.prior,
                          anchor=rating.anchor)
    info = RunInfo(n_requests=len(requests), seeds=sorted({seed for _, seed in requests}),
                   ratings=ratings, **fields)
    return info.to_dict()


def write_leaderboard(path: Path, board: Leaderboard) -> None:
    """The one writer: atomic, so a half-written file is never read as a finished run."""
    from autojudge.runtime.atomic_files import atomic_write_text

    atomic_write_text(path, json.dumps(board.to_dict(), indent=2, default=str) + "\n")


def parse_leaderboard(document: Any, where: str = "leaderboard.json") -> Leaderboard:
    """A decoded leaderboard document, checked and typed (`AutojudgeError` otherwise)."""
    if not isinstance(document, Mapping) or "run" not in document:
        raise AutojudgeError(f"{where} is not an autojudge leaderboard (no \"run\" section)")
    schema = document.get("schema", LEADERBOARD_SCHEMA)
    if not isinstance(schema, int) or schema > LEADERBOARD_SCHEMA:
        raise AutojudgeError(f"{where} has leaderboard schema {schema!r}; this autojudge "
                             f"reads schema {LEADERBOARD_SCHEMA}: upgrade autojudge")
    try:
        return Leaderboard.from_dict(document)
    except AutojudgeError as exc:
        raise AutojudgeError(f"{where} is not a valid autojudge leaderboard: {exc}") from None


def read_leaderboard(path: Path) -> Leaderboard:
    """The one reader: `path` is a leaderboard.json or a run folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "leaderboard.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AutojudgeError(f"{path} not found: not a finished run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AutojudgeError(f"{path} is unreadable ({exc}); run the experiment again to "
                             "rewrite it") from None
    return parse_leaderboard(document, str(path))


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of leaderboard.json, derived from the classes."""
    defs: dict[str, Any] = {}
    root = _schema_of(Leaderboard, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://autojudge.dev/leaderboard.schema.json",
            "title": "autojudge leaderboard.json", **root, "$defs": defs}


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean",
               dict: "object"}


def _schema_of(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return {"anyOf": [_schema_of(inner[0], defs), {"type": "null"}]}
    if origin is list:
        return {"type": "array", "items": _schema_of(args[0], defs)}
    if isinstance(hint, type) and issubclass(hint, _Record):
        if hint.__name__ not in defs:
            defs[hint.__name__] = {}  # a placeholder first: records may nest
            hints = typing.get_type_hints(hint)
            fields = [f for f in dataclasses.fields(hint) if f.name != "extra"]
            defs[hint.__name__] = {
                "type": "object", "description": " ".join((hint.__doc__ or "").split()),
                "properties": {f.name: _schema_of(hints[f.name], defs) for f in fields},
                "required": sorted(_required(hint) - {"extra"}),
                "additionalProperties": True}
        if hint is Leaderboard:
            return dict(defs.pop(hint.__name__))
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]} if hint is not float else {"type": "number"}
    return {}
