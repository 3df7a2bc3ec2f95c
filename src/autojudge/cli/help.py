"""`python -m autojudge --help`: autojudge's own page instead of Hydra's generic one.

Config-group choices and the defaults are read from the shipped conf folder (plus any
`hydra.searchpath=[file://...]` folder on the command line), so the page never goes stale.
Only PyYAML is imported; no plugin, no torch.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from autojudge.cli.checks import available

#: groups shown first, in this order; any other group folder follows alphabetically
GROUP_ORDER = ("model", "judge", "suite", "logger")

#: (arguments, comment) of the example commands
EXAMPLES = (
    ("", "the default experiment"),
    ("experiment=smoke", "a preset of conf/experiment/"),
    ("model=[typeset,blank] judge=[ocr] suite.limit=10", ""),
    ("suite.tags=[text_rendering] suite.seeds=[0,1,2]", "filter the suite, more seeds"),
    ("model=[flux_schnell,fast_sdxl] judge=[ocr,clip]", "needs [fal] and [clip]"),
    ("-m model.typeset.max_font_size=24,48,96", "a sweep: one run per point"),
    ("hydra.run.dir=runs/my_experiment logger=none", "choose the folder, no W&B"),
    ("--cfg job model=[typeset,blank]", "print the composed config"),
)

def commands_section(width: int) -> list[str]:
    """The subcommands, from autojudge.cli's table (so the page lists every one), and
    their aliases."""
    from autojudge.cli.commands import COMMANDS

    rows = [(f"{c.name} {c.usage}", c.summary) for c in COMMANDS]
    column = max(len(left) for left, _ in rows) + 2
    others = [c.name for c in COMMANDS if c.name != "run"]
    aliases = [f"autojudge-{n}" for n in others] + [f"python -m autojudge.{n}" for n in others]
    return [*(f"  autojudge {left:<{column}}{summary}" for left, summary in rows),
            *_wrap("  aliases: ", aliases, width)]

EXTRAS = """\
  The core runs the default experiment, rate, gate and validate judge=[ocr]. Others:
    [clip]       judges clip, aesthetic (torch, open_clip)
    [diffusers]  local diffusers models: sd15, sdxl_turbo, flux_schnell_local (torch)
    [fal]        hosted fal.ai models: flux_*, fast_sdxl, sd35_*, recraft_v3
    [vlm]        judge vlm on an OpenAI-compatible endpoint
    [vlm-local]  judge vlm with backend=transformers (torch)
    [all]        all of the above
    [arena]      python -m autojudge.arena (starlette, uvicorn, sse-starlette)
    [ray]        executor=ray: generation and judging on a Ray cluster
    [sweep]      hydra/sweeper=optuna
  e.g. pip install 'autojudge[clip,fal]'"""

HYDRA_FLAGS = """\
  --cfg job | --cfg all     print the composed config and exit
  -m, --multirun            sweep: one run per combination of comma-separated values
  --info [config|defaults]  where configs were found and how they were chosen
  --hydra-help              Hydra's own flags"""


def prog_name(argv0: str) -> str:
    """How the user called us: `python -m autojudge` or the console script's name."""
    name = Path(argv0).name
    return "python -m autojudge" if name in ("__main__.py", "-m", "-c", "") else name


def wants_help(args: Sequence[str]) -> bool:
    """True for -h/--help (Hydra's --hydra-help is left to Hydra)."""
    return any(a in ("-h", "--help") for a in args)


def _search_dirs(conf_dir: Path, args: Sequence[str]) -> list[Path]:
    """The shipped conf folder plus `file://` folders of a hydra.searchpath override."""
    dirs = [conf_dir]
    for arg in args:
        key, _, value = arg.lstrip("+~").partition("=")
        if key == "hydra.searchpath":
            for entry in value.strip("[]").split(","):
                entry = entry.strip().strip("'\"")
                if entry.startswith("file://"):
                    dirs.append(Path(entry[len("file://"):]))
    return dirs


def group_choices(dirs: Sequence[Path]) -> dict[str, list[str]]:
    """Config group -> option names found in `dirs` (folders holding *.yaml)."""
    groups: set[str] = set()
    for folder in dirs:
        if folder.is_dir():
            groups |= {p.name for p in folder.iterdir()
                       if p.is_dir() and not p.name.startswith(("_", "."))}
    ordered = [g for g in GROUP_ORDER if g in groups] + sorted(groups - set(GROUP_ORDER))
    choices = {g: sorted({n for folder in dirs for n in available(folder, g)}) for g in ordered}
    return {g: names for g, names in choices.items() if names}


def default_choices(conf_dir: Path) -> list[str]:
    """The defaults list of config.yaml as overrides (`model=[typeset,blank,noise]`)."""
    import yaml

    try:
        document = yaml.safe_load((conf_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    out = []
    for entry in document.get("defaults") or []:
        if isinstance(entry, dict):
            for group, value in entry.items():
                if value is None or group.startswith("optional "):
                    continue  # experiment: null, optional local: nothing chosen by default
                shown = f"[{','.join(map(str, value))}]" if isinstance(value, list) else value
                out.append(f"{group}={shown}")
    return out


def _wrap(prefix: str, words: list[str], width: int) -> list[str]:
    lines, line = [], prefix
    for i, word in enumerate(words):
        piece = word + ("," if i < len(words) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip() != prefix.strip():
            lines.append(line.rstrip())
            line = " " * len(prefix)
        line += piece + " "
    lines.append(line.rstrip())
    return lines


def help_page(conf_dir: Path, args: Sequence[str] = (), argv0: str | None = None) -> str:
    """The whole --help page as text."""
    prog = prog_name(argv0 if argv0 is not None else sys.argv[0])
    width = max(60, min(100, _terminal_width()))
    choices = group_choices(_search_dirs(conf_dir, args))
    pad = max((len(g) for g in choices), default=5) + 3
    group_lines: list[str] = []
    for group, names in choices.items():
        group_lines += _wrap(f"  {group + ':':<{pad}}", names, width)
    defaults = " ".join(default_choices(conf_dir)) or "(see config.yaml)"
    sections: list[str] = [
        f"usage: {prog} [run] [OVERRIDES...] [--cfg job] [-m]",
        f"       {prog} COMMAND [ARGS...]   (COMMAND --help for its page)",
        "",
        "Generate images from a tagged prompt suite, let judges fight pairwise battles and",
        "print a leaderboard (Bradley-Terry ratings on the Elo scale, with confidence",
        "intervals, per judge and per tag, next to latency and cost). Outputs go to",
        "runs/<time>_<name>/ under the working directory.",
        "",
        "Default experiment (no network, no API key):",
        f"  {defaults}",
        "",
        "Config groups (group=name; model and judge take lists: model=[a,b]):",
        *group_lines,
        f"  files: {conf_dir}; add your own with hydra.searchpath=[file:///my/conf]",
        "  any value: model.typeset.width=256  judge.ocr.min_confidence=0.5  suite.limit=20",
        "",
        "Examples:",
        *_examples(prog),
        "",
        "Commands (each takes --help):",
        *commands_section(width),
        "",
        "Extras (optional capabilities):",
        EXTRAS,
        "",
        "Hydra flags:",
        HYDRA_FLAGS,
    ]
    return "\n".join(sections)


def print_help(conf_dir: Path, args: Sequence[str] = ()) -> None:
    """Print the page; a reader that stops early (`| head`) is not an error."""
    try:
        print(help_page(conf_dir, args))
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the closed pipe again at exit: point stdout at /dev/null
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _examples(prog: str) -> list[str]:
    commands = [f"{prog} {args}".rstrip() for args, _ in EXAMPLES]
    column = max(len(c) for c in commands) + 2
    return [f"  {c:<{column}}# {comment}" if comment else f"  {c}"
            for c, (_, comment) in zip(commands, EXAMPLES)]


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100
