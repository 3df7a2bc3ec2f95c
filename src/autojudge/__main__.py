"""`python -m autojudge [overrides]`: a Hydra app; the work happens in pipeline.run."""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from autojudge.config import CONF_DIR, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _experiment(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from autojudge.errors import AutojudgeError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
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
    except AutojudgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is in the store; run the same command to resume",
              file=sys.stderr)
        sys.exit(130)


def main() -> None:
    """Console entry point (also `python -m autojudge`)."""
    from autojudge.cli_checks import check_composition, check_overrides

    problem = check_overrides(sys.argv[1:], CONF_DIR) or check_composition(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    _experiment()


if __name__ == "__main__":
    main()
