"""``biocredit export RUN``: a run's trained policy as a Stable-Baselines3 zip.

For users who want ``PPO.load`` on a zip (or ``A2C``, ``SAC``, ``TD3``, ``DQN``,
``RecurrentPPO``). SB3's zip format pickles (cloudpickle) the algorithm's settings, so loading
one runs code from the file: load only zips you trust. biocredit's own loading
(:func:`~biocredit.training.evaluation.load_run_policy`, ``biocredit eval``) reads the run's
safetensors checkpoint and never unpickles.
"""

from __future__ import annotations

from pathlib import Path

from biocredit.checkpoints import load_module, require_checkpoint
from biocredit.envs import make_sb3_vec_env
from biocredit.envs.multiagent import is_multiagent
from biocredit.errors import ConfigError
from biocredit.training.run_folder import read_run_config
from biocredit.training.sb3_runner import build_model


def export_run(run_dir: Path, out: Path | None = None) -> Path:
    """Write the SB3 zip of ``run_dir``'s trained policy to ``out`` (default
    ``RUN_DIR/sb3_<algo>.zip``) and return its path.

    The replay buffer and the ``normalize`` statistics are not in it: SB3 keeps those in files
    of their own (the statistics are in the run's newest checkpoint folder).
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if config.agent is not None or is_multiagent(config.env):
        kind = f"native agent '{config.agent}'" if config.agent else "multi-agent run"
        raise ConfigError(
            f"'{run_dir}' is a {kind}, not an SB3 algorithm: there is no SB3 zip to export. "
            "Load it with biocredit instead (biocredit.agents.Agent.load(RUN_DIR), or "
            "`biocredit eval RUN_DIR`)."
        )
    env = make_sb3_vec_env(config.env, 1, config.seed, config.env_kwargs)
    algo = build_model(config, env)
    meta = load_module(algo.policy, require_checkpoint(run_dir), {"env": config.env})
    algo.num_timesteps = int(meta.get("num_timesteps", 0))
    out = Path(out) if out is not None else run_dir / f"sb3_{config.algo}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    algo.save(out)  # SB3 appends ".zip" to a name without it
    env.close()
    return out if out.suffix == ".zip" else out.with_name(out.name + ".zip")
