"""W&B's start-up off the run's critical path: a child process that loads wandb while the
run generates, judges and writes its report, then logs the finished run folder.

Importing wandb, its launch module (which `wandb.init` imports every time) and starting
its service process take seconds, about as long as a whole warm re-run of a small
experiment. So a `WandbSession` is started as soon as a single run's overrides are known
to compose (`autojudge.__main__`; or by `pipeline.run` itself): its child imports wandb
and what logging reads the run folder with. `bind(logger_cfg, run_dir)` then says
whether the run logs at all (if not, the child is stopped) and where: the child points
W&B into the run folder (`wandb_log.point_wandb_into`) and calls `wandb.setup()`. When
the run's files are written, `log(config, document)` hands it the run and waits until
the W&B run is finished and its staging slimmed (the records are durable when the
command exits, as before); `close()` without `log` (the run failed) stops the child with
no W&B run made, as before. Where no child can be started, the logging runs here,
exactly as `log_to_wandb` does.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any, Mapping

from autojudge.errors import AutojudgeError

log = logging.getLogger(__name__)
_WAIT_S = 1800.0  # a W&B run with thousands of images logs for minutes, never for hours
#: what `wandb.init` imports every time and what logging a run folder imports (measured:
#: wandb.Table checks for pandas, its artifacts load pyarrow, requests and
#: opentelemetry), ~2 s of a warm re-run's wait when left to the logging itself
_WARM_UP = ("wandb", "wandb.sdk.launch.inputs.internal",
            "wandb.sdk.artifacts._internal_artifact", "pandas", "pyarrow", "requests",
            "psutil", "cloudpickle", "dateutil.parser",
            "opentelemetry.sdk", "opentelemetry.exporter", "multiprocessing.pool",
            "autojudge.report.wandb_log", "autojudge.report.wandb_tables",
            "autojudge.report.rundata", "autojudge.report.render_cache",
            "autojudge.sweeps.jobs", "autojudge.store.index", "autojudge.experiment.schema",
            "autojudge.battles.rankings", "PIL.PngImagePlugin")


def logger_on(logger_cfg: Mapping[str, Any]) -> bool:
    """Whether the run logs to W&B (the rule `log_to_wandb` applies)."""
    from autojudge.report.wandb_log import _typed, wandb_mode

    logger = _typed(logger_cfg)
    return logger.kind != "none" and wandb_mode(logger.mode) != "disabled"


def _child(conn: Any) -> None:
    """The child: warm W&B up, then log the run it is handed (or nothing). Sends back
    (status, W&B run dir or error line, seconds spent warming up and logging)."""
    started = time.perf_counter()
    for module in _WARM_UP:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the real call below says what is wrong
            pass
    timing = {"warm-up": time.perf_counter() - started}
    run_dir = conn.recv()
    if run_dir is None:
        return
    try:
        from autojudge.report.wandb_log import point_wandb_into

        point_wandb_into(Path(run_dir))  # W&B reads its folders when it sets up
        import wandb

        wandb.setup()
    except Exception:  # noqa: BLE001 - as above
        pass
    timing["set-up"] = time.perf_counter() - started - timing["warm-up"]
    job = conn.recv()
    if job is None:
        return
    from autojudge.report.wandb_log import log_to_wandb

    logger_cfg, config, document = job
    started = time.perf_counter()
    try:
        result = ("ok", log_to_wandb(logger_cfg, Path(run_dir), config, document))
    except Exception as exc:  # noqa: BLE001 - sent back as one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result = ("error", f"{type(exc).__name__}: {text}" if not isinstance(
            exc, AutojudgeError) else text)
    timing["logging"] = time.perf_counter() - started
    conn.send((*result, timing))


class WandbSession:
    """One run's W&B logging, warmed up in a child process (see the module docstring).

    `WandbSession()` starts the child (`start=False`: none, `log` then logs here);
    `WandbSession(logger_cfg, run_dir)` also binds it."""

    def __init__(self, logger_cfg: Mapping[str, Any] | None = None,
                 run_dir: Path | None = None, start: bool = True):
        self.logger_cfg: Mapping[str, Any] | None = None
        self.run_dir: Path | None = None
        self.proc: Any = None
        self.conn: Any = None
        self.timing: dict[str, float] = {}  # the child's seconds: warm-up, logging
        if start:
            self._start()
        if logger_cfg is not None and run_dir is not None:
            self.bind(logger_cfg, run_dir)

    def _start(self) -> None:
        try:
            ctx = multiprocessing.get_context("spawn")  # no copy of the run's threads
            self.conn, child_conn = ctx.Pipe()
            self.proc = ctx.Process(target=_child, args=(child_conn,),
                                    name="autojudge-wandb", daemon=True)
            self.proc.start()
            child_conn.close()
        except (OSError, RuntimeError) as exc:  # logs here instead, as before
            log.info("W&B is not warmed up in a child process: %s", exc)
            self.proc = self.conn = None

    def bind(self, logger_cfg: Mapping[str, Any], run_dir: Path) -> None:
        """The run's logger settings and folder: the child sets W&B up there, or stops
        when the run does not log."""
        self.logger_cfg, self.run_dir = logger_cfg, Path(run_dir)
        if not logger_on(logger_cfg):
            self.close()
        elif self.proc is not None:
            try:
                self.conn.send(str(self.run_dir))
            except OSError:
                self.close()

    def log(self, config: Mapping[str, Any], document: Mapping[str, Any]) -> str | None:
        """Log the finished run; returns the W&B run directory (None: logger off)."""
        from autojudge.report.wandb_log import log_to_wandb

        if self.logger_cfg is None or self.run_dir is None:
            raise RuntimeError("WandbSession.log before bind")
        if not logger_on(self.logger_cfg):
            return None
        if self.proc is None:
            return log_to_wandb(self.logger_cfg, self.run_dir, config, document)
        try:
            self.conn.send((dict(self.logger_cfg), dict(config), dict(document)))
            if not self.conn.poll(_WAIT_S):
                raise AutojudgeError(f"W&B logging did not finish in {_WAIT_S:.0f} s")
            status, value, self.timing = self.conn.recv()
        except (EOFError, OSError) as exc:
            why = str(exc) or "the logging process ended"
            raise AutojudgeError(f"W&B logging stopped before it finished ({why}); the "
                                 "run's files are complete") from None
        finally:
            self._end()
        if status != "ok":
            raise AutojudgeError(f"W&B logging failed: {value}")
        return value

    def close(self) -> None:
        """End the child without logging (the run did not finish): it has made no W&B
        run, so it is stopped at once rather than waited for."""
        proc = self.proc
        if proc is not None:
            proc.terminate()
            self._end()

    def _end(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
        self.conn.close()
