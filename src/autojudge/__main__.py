"""`autojudge [run] [overrides]` (or `python -m autojudge`): a Hydra app; the work happens
in pipeline.run. `autojudge COMMAND ...` runs a subcommand instead (autojudge.cli).

`--help` prints autojudge's own page (autojudge.cli.help); Hydra's flags (`--cfg job`, `-m`,
`--info`, `--hydra-help`) pass through to Hydra.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from autojudge.experiment.schema import CONF_DIR, register_configs
from autojudge.runtime.resources import missing as missing_resources


#: exit codes (README, "Running experiments"): 0 answered (failures reported), 1 the
#: release gate found a regression, 2 refused before any work, 3 ran but nothing was
#: rated, 75 the Ray cluster was lost mid-run (executors.ray_lost), 130 interrupted
EXIT_REFUSED, EXIT_NO_ANSWER, EXIT_INTERRUPTED = 2, 3, 130

# run folders that existed before this run started: a refusal never removes them
_EXISTING_RUN_DIRS: set[str] = set()
# whether each job of this process answered (a multirun's jobs, when launched here)
_ANSWERED: list[bool] = []
# the run folder of each job this process started: a Ctrl-C after one started (between a
# sweep's jobs, as Hydra ends a job) has finished work to resume
_STARTED: list[Path] = []
# a W&B child started before Hydra composed (`_warm_up_wandb`), for the run to take
_WANDB: list[Any] = []


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _experiment(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from autojudge.errors import AutojudgeError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    _STARTED.append(run_dir)
    try:
        return _run(cfg, run_dir)
    except AutojudgeError as exc:
        import logging

        from autojudge.runtime.progress import to_log_file

        print(f"error: {exc}", file=sys.stderr)
        to_log_file(f"error: {exc}", logging.ERROR)  # for a folder kept: it was there before
        _discard_run_dir(run_dir)
        code = getattr(exc, "exit_code", EXIT_REFUSED)  # 75: Ray cluster lost, re-run
        if code == EXIT_REFUSED:  # a sweep's folder goes too, or says why it stopped
            from autojudge.sweeps.jobs import refused_in_multirun

            refused_in_multirun(str(exc))
        sys.exit(code)
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(EXIT_INTERRUPTED)


def _run(cfg: DictConfig, run_dir: Path) -> float | None:
    """The run, its report, and its exit: no answer -> 3, a gate regression -> 1."""
    from autojudge.experiment import pipeline
    from autojudge.experiment.schema import typed_settings
    from autojudge.report.terminal import print_report

    settings = typed_settings(pipeline.plain_config(cfg))  # what every check below reads
    _check_logger(settings.logger)
    _check_sweeper(settings.sweep)
    document = pipeline.run(cfg, run_dir, _WANDB.pop()) if _WANDB else \
        pipeline.run(cfg, run_dir)
    print_report(document, str(run_dir), settings.ratings.confidence,
                 settings.report.terminal_tags)
    problem = pipeline.no_answer(document)
    _ANSWERED.append(problem is None)
    if problem:
        _say_no_answer(problem, run_dir)
    if settings.gate.baseline or settings.gate.candidate:
        from autojudge.experiment.gate import run_gate, settings_from_config

        result = run_gate(run_dir, settings_from_config(settings.gate, settings.ratings))
        if result.exit_code:
            sys.exit(result.exit_code)  # after every output is written
    from autojudge.sweeps.variants import task_return

    return task_return(document)  # the sweep objective: what Hydra's sweepers read


def _say_no_answer(problem: str, run_dir: Path) -> None:
    """One line on stderr (and in the log); exit 3 after every output is written. A sweep
    goes on to its other points (one setting without an answer is a result there) and
    exits 3 only when none answered."""
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from autojudge.runtime.progress import to_log_file

    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    line = (f"{'warning' if sweep else 'error'}: ran, but no answer: {problem}; the outputs "
            f"are in {run_dir}")
    print(line, file=sys.stderr)
    to_log_file(line, logging.ERROR)
    if not sweep:
        sys.exit(EXIT_NO_ANSWER)


def _discard_run_dir(run_dir: Path) -> None:
    """A refused run leaves no folder behind: remove the one Hydra made for it when it holds
    only Hydra's own files (.hydra/ and the log) and was not there before this run."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    own = {".hydra", f"{HydraConfig.get().job.name}.log"}
    if str(run_dir.resolve()) in _EXISTING_RUN_DIRS or not run_dir.is_dir():
        return
    if all(entry.name in own for entry in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def _say_interrupted() -> None:
    """Ctrl-C: the exact command that resumes, on stderr and in the run's log."""
    import logging
    import shlex

    from autojudge.runtime.progress import to_log_file

    command = " ".join(["python -m autojudge", *map(shlex.quote, sys.argv[1:])])
    line = f"interrupted: finished work is in the store; resume with: {command}"
    print(line, file=sys.stderr)
    to_log_file(line, logging.WARNING)


def _check_sweeper(sweep: Any) -> None:
    """hydra/sweeper=optuna without an objective, or minimising it: one line, no work."""
    from dataclasses import asdict

    from hydra.core.hydra_config import HydraConfig

    from autojudge.sweeps.variants import check_sweeper

    check_sweeper(HydraConfig.get().sweeper, {"sweep": asdict(sweep)})


def _check_logger(logger: Any) -> None:
    """logger=wandb without wandb installed: one line before any work, not after it."""
    from autojudge.errors import AutojudgeError
    from autojudge.runtime.extras import missing_modules

    if logger.kind == "wandb" and logger.mode != "disabled" and missing_modules(["wandb"]):
        raise AutojudgeError("logger=wandb needs the wandb package, which is not installed: "
                             "pip install wandb, or run with logger=none")


def main(argv: list[str] | None = None) -> None:
    """Console entry point `autojudge` (also `python -m autojudge`): a first argument that
    names a subcommand (autojudge.cli) runs it; anything else is an experiment, as is
    `autojudge run ...`."""
    from autojudge.cli.commands import run_command, split_command, unknown_command

    register_configs()  # here, not at import: W&B's child process imports this module
    args = sys.argv[1:] if argv is None else list(argv)
    command, rest = split_command(args)
    if command is not None and command.name != "run":
        sys.exit(run_command(command, rest))
    sys.argv = [sys.argv[0], *rest]  # Hydra reads sys.argv itself: it must not see `run`
    problem = None if command else unknown_command(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    try:
        _main(rest)
    except KeyboardInterrupt:  # outside a job: in the checks, or in Hydra around a job
        if _STARTED:
            _say_interrupted()
        else:
            print("interrupted before the run started; nothing was done", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def _main(args: list[str]) -> None:
    problem = missing_resources()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    from autojudge.cli.help import print_help, wants_help

    if wants_help(args):
        print_help(CONF_DIR, args)
        return
    from autojudge.cli.checks import check_composition, check_overrides, check_run_dir

    problem = _register_plugin_schemas() or check_overrides(args, CONF_DIR) or \
        check_composition(args) or \
        (None if any(a in ("-m", "--multirun") for a in args) else check_run_dir(args))
    if not problem and not any(a.startswith("-") for a in args):  # one run, no Hydra flags
        problem = _check_run_dir_can_be_made(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    try:
        _warm_up_wandb(args)
        _experiment()
    finally:
        while _WANDB:  # a run that ended before it logged: stop the child
            _WANDB.pop().close()
    if _ANSWERED and not any(_ANSWERED):  # a sweep (one run exited already): none answered
        print(f"error: ran, but no answer: none of the {len(_ANSWERED)} jobs could rate a "
              "model (each job's line above says why)", file=sys.stderr)
        sys.exit(EXIT_NO_ANSWER)


def _warm_up_wandb(args: list[str]) -> None:
    """One run that may log to W&B: start loading wandb in a child process now, while
    Hydra composes and the run works (report.wandb_session); the run binds or stops it."""
    import os

    if any(a.startswith("-") for a in args) or "logger=none" in args or \
            os.environ.get("WANDB_MODE") == "disabled":
        return
    from autojudge.report.wandb_session import WandbSession

    _WANDB.append(WandbSession())


def _register_plugin_schemas() -> str | None:
    """Installed plugins' schemas (experiment.schema.register_plugin_schemas); the one
    line that refuses a plugin name taken twice, or None."""
    from autojudge.errors import AutojudgeError
    from autojudge.experiment.schema import register_plugin_schemas

    try:
        register_plugin_schemas()
    except AutojudgeError as exc:
        return str(exc)
    return None


def _check_run_dir_can_be_made(args: list[str]) -> str | None:
    """The run folder's name and place, before Hydra makes it (and remembers whether it
    existed already, so that a refusal never removes a folder it did not make)."""
    import os

    from autojudge.experiment.run_dir import planned_run_dir, run_dir_problem

    planned = planned_run_dir(args)
    if planned is None:
        return None
    if planned[0].exists():
        _EXISTING_RUN_DIRS.add(os.path.realpath(planned[0]))
    return run_dir_problem(*planned)


if __name__ == "__main__":
    main()
