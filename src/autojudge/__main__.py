"""`python -m autojudge [overrides]`: a Hydra app; the work happens in pipeline.run.

`--help` prints autojudge's own page (cli_help.py); Hydra's flags (`--cfg job`, `-m`,
`--info`, `--hydra-help`) pass through to Hydra.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from autojudge.config import CONF_DIR, register_configs
from autojudge.resources import missing as missing_resources

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _experiment(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from autojudge.errors import AutojudgeError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        _check_logger(cfg)
        _check_sweeper(cfg)
        from autojudge import pipeline
        from autojudge.report.terminal import print_report

        document = pipeline.run(cfg, run_dir)
        print_report(document, str(run_dir), float(cfg.ratings.confidence),
                     bool(cfg.report.terminal_tags))
        gate_cfg = cfg.get("gate")
        if gate_cfg is not None and (gate_cfg.baseline or gate_cfg.candidate):
            from autojudge.gate import run_gate, settings_from_config

            result = run_gate(run_dir, settings_from_config(gate_cfg, cfg.ratings))
            if result.exit_code:
                sys.exit(result.exit_code)  # after every output is written
        from autojudge.sweeps import task_return

        return task_return(document)  # the sweep objective: what Hydra's sweepers read
    except AutojudgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is in the store; run the same command to resume",
              file=sys.stderr)
        sys.exit(130)


def _check_sweeper(cfg: DictConfig) -> None:
    """hydra/sweeper=optuna without an objective, or minimising it: one line, no work."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from autojudge.sweeps import check_sweeper

    sweep = cfg.get("sweep")
    check_sweeper(HydraConfig.get().sweeper,
                  {"sweep": OmegaConf.to_container(sweep, resolve=True) if sweep else {}})


def _check_logger(cfg: DictConfig) -> None:
    """logger=wandb without wandb installed: one line before any work, not after it."""
    from autojudge.errors import AutojudgeError
    from autojudge.extras import missing_modules

    logger = cfg.get("logger")
    if (logger is not None and logger.get("kind") == "wandb"
            and logger.get("mode") != "disabled" and missing_modules(["wandb"])):
        raise AutojudgeError("logger=wandb needs the wandb package, which is not installed: "
                             "pip install wandb, or run with logger=none")


def main() -> None:
    """Console entry point (also `python -m autojudge`)."""
    args = sys.argv[1:]
    problem = missing_resources()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    from autojudge.cli_help import print_help, wants_help

    if wants_help(args):
        print_help(CONF_DIR, args)
        return
    from autojudge.cli_checks import check_composition, check_overrides, check_run_dir

    problem = check_overrides(args, CONF_DIR) or check_composition(args) or \
        (None if any(a in ("-m", "--multirun") for a in args) else check_run_dir(args))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    _experiment()


if __name__ == "__main__":
    main()
