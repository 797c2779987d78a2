"""Every bad input biocredit is known to refuse, and the one-paragraph message each gets.

Run ``python experiments/bad_inputs.py`` to rebuild ``docs/bad_inputs.md`` from a real run
folder; ``tests/test_bad_inputs.py`` asserts each message. A case is a ``biocredit`` command
line (placeholders: ``{tmp}`` a scratch folder, ``{run}`` a finished run), a ``setup`` that
prepares the files it needs, and ``uninstalled``: packages that cannot be imported while it runs
(as if not installed, to show what a missing optional extra gets).
"""

from __future__ import annotations

import contextlib
import io
import pickle
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "pickle_payload_ran"


@dataclass
class Case:
    what: str
    args: list[str]
    expect: str
    setup: Callable[[Path, Path], None] | None = None
    uninstalled: tuple[str, ...] = ()


class Payload:
    """Unpickling this creates the marker file: proof that a loader executed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _write(name: str, text: str) -> Callable[[Path, Path], None]:
    return lambda tmp, run: (tmp / name).write_text(text)


def _copy_run(edit: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    def setup(tmp: Path, run: Path) -> None:
        shutil.copytree(run, tmp / "bad_run")
        edit(tmp / "bad_run")

    return setup


def _newest(run: Path) -> Path:
    from biocredit.checkpoints import newest_checkpoint

    return newest_checkpoint(run)


def _forged(edit: Callable[[Path], None]) -> Callable[[Path], None]:
    """``edit`` the newest checkpoint, then rewrite its manifest to match: a damaged file that
    the completeness check alone does not catch."""

    def forge(run: Path) -> None:
        from biocredit.checkpoints import MANIFEST_FILE, seal

        checkpoint = _newest(run)
        edit(checkpoint)
        (checkpoint / MANIFEST_FILE).unlink()
        seal(checkpoint)

    return forge


def _truncate(run: Path) -> None:
    weights = _newest(run) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


def _pickle_payload(checkpoint: Path) -> None:
    payload = pickle.dumps(Payload(checkpoint.parents[2] / MARKER))
    (checkpoint / "model.safetensors").write_bytes(payload)


def _other_env(run: Path) -> None:
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("env: CartPole-v1", "env: Acrobot-v1"))


def _pettingzoo_env(run: Path) -> None:
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("env: CartPole-v1", f"env: '{SPREAD}'"))


def _pettingzoo_ppo(run: Path) -> None:
    config = run / "config.yaml"
    text = config.read_text().replace("env: CartPole-v1", f"env: '{SPREAD}'")
    text = text.replace("algo: online", "algo: ppo").replace(
        "agent: neuromodulated-ac", "agent: null"
    )
    config.write_text(text.replace("learner: null", "learner: dfa", 1))


def _corrupt_meta(checkpoint: Path) -> None:
    (checkpoint / "checkpoint.json").write_text("{oops")


def _other_learner(run: Path) -> None:
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("learner: null", "learner: dfa"))


def _drop(name: str) -> Callable[[Path], None]:
    return lambda run: (_newest(run) / name).unlink()


def _no_checkpoint(run: Path) -> None:
    shutil.rmtree(run / "checkpoints")


TRAIN = ["train", "--steps", "64", "--out", "{tmp}/out", "--no-progress"]
AGENT = [*TRAIN, "--agent", "neuromodulated-ac"]
AIF = [*TRAIN, "--agent", "active-inference"]
MODULES = "agent_kwargs.modules"
SPREAD = "pettingzoo:mpe2.simple_spread_v3"

# fmt: off
CASES: list[Case] = [
    Case("unknown learner", [*TRAIN, "--learner", "dfaa"],
         "Unknown learner 'dfaa' in the command line. Did you mean 'dfa'?"),
    Case("unknown algorithm", [*TRAIN, "--algo", "ppp"],
         "Unknown algo 'ppp' in the command line. Did you mean 'ppo'?"),
    Case("unknown env id", [*TRAIN, "--env", "CartPol-v1"], "Did you mean 'CartPole-v1'?"),
    Case("unknown agent", [*TRAIN, "--agent", "neuromodulated"],
         "Unknown agent 'neuromodulated'. Did you mean 'neuromodulated-ac'?"),
    Case("zero steps", [*TRAIN, "--steps", "0"], "--steps must be >= 1, got 0"),
    Case("negative steps", [*TRAIN, "--steps", "-5"], "--steps must be >= 1, got -5"),
    Case("zero envs", [*TRAIN, "--n-envs", "0"],
         "Key 'n_envs' (parallel env copies) in the command line must be >= 1, got 0."),
    Case("negative seed", [*TRAIN, "--seed", "-1"],
         "Key 'seed' (seeds everything of the run) in the command line must be >= 0, got -1."),
    Case("zero threads", [*TRAIN, "--threads", "0"],
         "Key 'threads' (torch threads) in the command line must be >= 1, got 0."),
    Case("negative alignment interval", [*TRAIN, "--set", "alignment_every=-1"],
         "Key 'alignment_every' in the command line must be >= 0, got -1. 0 = off. "
         "Try alignment_every: 10."),
    Case("hebbian3f in an SB3 policy", [*TRAIN, "--learner", "hebbian3f"],
         "learns from a modulator signal, but an SB3 algorithm trains its networks through"),
    Case("unknown divergence action", [*TRAIN, "--set", "on_divergence=retry"],
         "Unknown on_divergence action 'retry'"),
    Case("misspelt config key", [*TRAIN, "--set", "stpes=10"],
         "Unknown key 'stpes' in the command line. Did you mean 'steps'?"),
    Case("wrong type", [*TRAIN, "--set", "eval_episodes=many"],
         "Key 'eval_episodes' (evaluation episodes at the end) in the command line must be int, "
         "got str 'many'"),
    Case("--set without =", [*TRAIN, "--set", "steps"], "--set expects key=value"),
    Case("misspelt algorithm option", [*TRAIN, "--set", "algo_kwargs.n_step=10"],
         "Unknown key 'n_step' in algo_kwargs (for ppo). Did you mean 'n_steps'?"),
    Case("negative learning rate", [*TRAIN, "--set", "algo_kwargs.learning_rate=-0.001"],
         "'learning_rate' must be a finite number > 0, got -0.001"),
    Case("bad schedule", [*TRAIN, "--set", "algo_kwargs.learning_rate=lin_fast"],
         "'learning_rate' must be a number or lin_<start>"),
    Case("dqn on a continuous action space", [*TRAIN, "--algo", "dqn", "--env", "Pendulum-v1"],
         "--algo dqn needs a discrete action space, but 'Pendulum-v1' has Box(-2.0, 2.0, (1,), "
         "float32). Use --algo sac, td3 or ppo"),
    Case("perturbation size not a number",
         [*TRAIN, "--algo", "sac", "--env", "Pendulum-v1", "--set",
          "policy_kwargs.critic_action_grad=perturbation", "--set",
          "policy_kwargs.critic_action_delta=much"],
         "policy_kwargs 'critic_action_delta' must be a number > 0, got 'much': the size of the "
         "action perturbations that estimate dQ/da. Try critic_action_delta: 0.05."),
    Case("sac on a discrete action space", [*TRAIN, "--algo", "sac"],
         "--algo sac needs a continuous (Box) action space, but 'CartPole-v1' has Discrete(2). "
         "Use --algo dqn, ppo or a2c"),
    Case("td3 on a discrete action space", [*TRAIN, "--algo", "td3"],
         "--algo td3 needs a continuous (Box) action space"),
    Case("unknown exploration noise", [*TRAIN, "--algo", "td3", "--env", "Pendulum-v1",
                                       "--set", "algo_kwargs.noise_type=gaussian"],
         "Unknown noise_type 'gaussian'"),
    Case("misspelt normalize option", [*TRAIN, "--set", "normalize={norm_obs: true, clip: 5}"],
         "Unknown key 'clip' in normalize"),
    Case("batch size rejected by SB3", [*TRAIN, "--set", "algo_kwargs.batch_size=1"],
         "ppo rejected its arguments"),
    Case("misspelt learner option", [*TRAIN, "--set", "learner_kwargs.sclae=2"],
         "Learner 'dfa' does not accept these options"),
    Case("non-positive feedback scale", [*TRAIN, "--set", "learner_kwargs.scale=0"],
         "dfa 'scale' must be > 0, got 0. Try scale: 1.0."),
    Case("unknown feedback init", [*TRAIN, "--set", "learner_kwargs.init=normal"],
         "Unknown feedback init 'normal'"),
    Case("chl feedback gain out of range",
         [*TRAIN, "--learner", "chl", "--set", "learner_kwargs.feedback_gain=2"],
         "chl 'feedback_gain' must be in (0, 1], got 2. Try feedback_gain: 0.01."),
    Case("dtp inverse rate out of range",
         [*TRAIN, "--learner", "dtp", "--set", "learner_kwargs.inverse_rate=2"],
         "dtp 'inverse_rate' must be in (0, 1], got 2"),
    Case("non-positive dtp noise", [*TRAIN, "--learner", "dtp", "--set", "learner_kwargs.noise=0"],
         "dtp 'noise' must be > 0, got 0"),
    Case("learner option of the wrong type",
         [*TRAIN, "--learner", "dtp", "--set", "learner_kwargs.noise=much"],
         "dtp 'noise' must be a number > 0, got 'much'. Try noise: 0.1."),
    Case("misspelt lra feedback",
         [*TRAIN, "--learner", "lra", "--set", "learner_kwargs.feedback=learnt"],
         "Unknown lra feedback 'learnt'. Did you mean 'learned'?"),
    Case("non-positive lra step", [*TRAIN, "--learner", "lra", "--set", "learner_kwargs.step=0"],
         "lra 'step' must be > 0, got 0"),
    Case("unknown local readout",
         [*TRAIN, "--learner", "local", "--set", "learner_kwargs.readout=linear"],
         "Unknown local readout 'linear'. Did you mean 'learned'? Valid choices: fixed, learned."),
    Case("unknown local output",
         [*TRAIN, "--learner", "local", "--set", "learner_kwargs.output=avg"],
         "Unknown local output 'avg'. Valid choices: mean, top."),
    Case("misspelt dni feedback",
         [*TRAIN, "--learner", "dni", "--set", "learner_kwargs.feedback=symetric"],
         "Unknown dni feedback 'symetric'. Did you mean 'symmetric'?"),
    Case("dni conditioned that is not a boolean",
         [*TRAIN, "--learner", "dni", "--set", "learner_kwargs.conditioned=maybe"],
         "dni 'conditioned' must be true or false, got 'maybe'"),
    Case("unknown activation", [*TRAIN, "--set", "policy_kwargs.activation_fn=softplus"],
         "Unknown activation 'softplus'"),
    Case("zero-width layer", [*TRAIN, "--set", "policy_kwargs.net_arch=[0]"],
         "Network size hidden[0]=0 is not a positive integer"),
    Case("signal-free learner for SB3's networks", [*TRAIN, "--learner", "softhebb"],
         "'softhebb' can train the features extractor instead"),
    Case("unknown features extractor",
         [*TRAIN, "--set", "policy_kwargs.features_extractor_class=NatureCNN"],
         "Unknown features_extractor_class 'NatureCNN'"),
    Case("conv features extractor on vector observations",
         [*TRAIN, "--set", "policy_kwargs.features_extractor_class=BioCnnExtractor"],
         "BioCnnExtractor reads images"),
    Case("misspelt policy option", [*TRAIN, "--set", "policy_kwargs.net_arh=[64]"],
         "Unknown key 'net_arh' in policy_kwargs (for ppo). Did you mean 'net_arch'?"),
    Case("missing config file", [*TRAIN, "--config", "{tmp}/missing.yaml"],
         "Cannot read config file"),
    Case("config file that is not YAML", [*TRAIN, "--config", "{tmp}/broken.yaml"],
         "is not valid YAML", _write("broken.yaml", "steps: [1, 2\n")),
    Case("config file that is a list", [*TRAIN, "--config", "{tmp}/list.yaml"],
         "must hold a mapping of keys to values, got list", _write("list.yaml", "- 1\n")),
    Case("config file with an unknown key", [*TRAIN, "--config", "{tmp}/typo.yaml"],
         "Unknown key 'learnr'", _write("typo.yaml", "learnr: fa\n")),
    Case("agent with an SB3 algorithm", [*AGENT, "--algo", "ppo"],
         "a native agent runs with algo 'online'"),
    Case("Hebbian learner in perception",
         [*AGENT, "--set", f"{MODULES}.perception.learner=hebbian3f"],
         "the perception role only receives errors"),
    Case("perception nobody teaches", [*AGENT, "--set", f"{MODULES}.perception.learner=dfa"],
         "modules.perception would never learn"),
    Case("signal-free learner as the actor",
         [*AGENT, "--set", f"{MODULES}.policy.actor.learner=softhebb"],
         "which learns from its inputs alone, but the policy learns from the TD error"),
    Case("TD modulator for an error-driven perception",
         [*AGENT, "--set", f"{MODULES}.perception.learner=fa",
          "--set", f"{MODULES}.perception.modulator=td_sign"],
         "is for signal-free learners"),
    Case("pff damping out of range",
         [*AGENT, "--set", f"{MODULES}.perception.learner=pff",
          "--set", f"{MODULES}.perception.learner_kwargs.damping=1"],
         "pff 'damping' must be in [0, 1), got 1"),
    Case("conv perception with a learner that has no conv rule",
         [*AGENT, "--set", f"{MODULES}.perception.learner=pc",
          "--set", f"{MODULES}.perception.convs=[{{channels: 8, kernel: 3}}]"],
         "Learner 'pc' cannot train a convolutional network: its inference is written for "
         "dense layers"),
    Case("misspelt conv layer key",
         [*AGENT, "--set", f"{MODULES}.perception.convs=[{{channels: 8, kernal: 3}}]"],
         "Unknown key 'kernal' in modules.perception.convs[0]. Did you mean 'kernel'?"),
    Case("conv perception on vector observations",
         [*AGENT, "--set", f"{MODULES}.perception.learner=dfa",
          "--set", f"{MODULES}.perception.convs=[{{channels: 8, kernel: 3}}]",
          "--set", f"{MODULES}.policy.actor.learner=dfa"],
         "modules.perception.convs reads image observations"),
    Case("missing policy module", [*AGENT, "--set", "agent_kwargs.modules.policy=null"],
         "must be a mapping (keys: actor, critic), got null. Every agent needs a policy"),
    Case("unknown module role", [*AGENT, "--set", "agent_kwargs.modules.vision.learner=dfa"],
         "Unknown key 'vision' in agent_kwargs.modules"),
    Case("unknown memory kind", [*AGENT, "--set", "agent_kwargs.modules.memory.kind=lstm"],
         "Unknown memory kind 'lstm' in agent_kwargs.modules.memory.kind."),
    Case("zero memory settling steps",
         [*TRAIN, "--agent", "eqprop-memory-ac", "--set", f"{MODULES}.memory.steps=0"],
         "Key 'agent_kwargs.modules.memory.steps' (settling steps per phase) must be >= 1, "
         "got 0."),
    Case("misspelt module optimizer", [*AGENT, "--set", f"{MODULES}.policy.actor.optimizer=adma"],
         "Unknown optimizer 'adma' in agent_kwargs.modules.policy.actor.optimizer. "
         "Did you mean 'adam'? Valid choices: adam, adamw, rmsprop, sgd."),
    Case("discount out of range", [*AGENT, "--set", "agent_kwargs.gamma=1.5"],
         "Key 'agent_kwargs.gamma' (discount) must be in [0, 1], got 1.5."),
    Case("trace decay out of range",
         [*AGENT, "--set", f"{MODULES}.policy.actor.learner_kwargs.lam=2"],
         "hebbian3f 'lam' must be in [0, 1], got 2"),
    Case("negative module learning rate", [*AGENT, "--set", f"{MODULES}.policy.critic.lr=-1"],
         "Key 'agent_kwargs.modules.policy.critic.lr' (learning rate; with sgd, the rule's own "
         "rate eta) must be > 0, got -1."),
    Case("observation space an agent cannot read", [*AGENT, "--env", "FrozenLake-v1"],
         "Observation space Discrete(16) is not a Box"),
    Case("action space an agent cannot drive", [*AGENT, "--env", "Blackjack-v1"], "is not a Box"),
    Case("active-inference module with a Hebbian learner",
         [*AIF, "--set", f"{MODULES}.value.learner=hebbian3f"],
         "Use an error- or target-driven learner"),
    Case("misspelt active-inference option", [*AIF, "--set", "agent_kwargs.epistemic_wieght=1"],
         "Did you mean 'epistemic_weight'?"),
    Case("target averaging rate out of range", [*AIF, "--set", "agent_kwargs.target_tau=0"],
         "Key 'agent_kwargs.target_tau' must be in (0, 1], got 0. target_tau: 1 copies"),
    Case("misspelt pc feedback",
         [*AIF, "--set", f"{MODULES}.value.learner_kwargs.feedback=symetric"],
         "Did you mean 'symmetric'?"),
    Case("active-inference on a discrete observation", [*AIF, "--env", "FrozenLake-v1"],
         "Observation space Discrete(16) is not a Box"),
    Case("run folder already used", ["train", "--out", "{run}", "--steps", "64"],
         "already holds a run"),
    Case("eval of a missing folder", ["eval", "{tmp}/nowhere"], "is not a biocredit run folder"),
    Case("eval of a folder that is not a run", ["eval", "{tmp}"], "is not a biocredit run folder"),
    Case("eval with zero episodes", ["eval", "{run}", "--episodes", "0"],
         "--episodes must be >= 1, got 0"),
    Case("--video-path without --video", ["eval", "{run}", "--video-path", "{tmp}/x.mp4"],
         "--video-path is only used with --video; add --video."),
    Case("truncated weights file", ["eval", "{tmp}/bad_run"],
         "model.safetensors is 100 bytes, its manifest says", _copy_run(_truncate)),
    Case("missing weights file", ["eval", "{tmp}/bad_run"],
         "model.safetensors is missing", _copy_run(_drop("model.safetensors"))),
    Case("run without a checkpoint", ["eval", "{tmp}/bad_run"],
         "holds no complete checkpoint", _copy_run(_no_checkpoint)),
    Case("corrupted checkpoint metadata, manifest rewritten", ["eval", "{tmp}/bad_run"],
         "checkpoint.json' is not valid JSON", _copy_run(_forged(_corrupt_meta))),
    Case("checkpoint for another env", ["eval", "{tmp}/bad_run"],
         "was saved for env 'CartPole-v1', but this model is for env 'Acrobot-v1'",
         _copy_run(_other_env)),
    Case("checkpoint for other learners", ["eval", "{tmp}/bad_run"],
         "does not fit this model", _copy_run(_other_learner)),
    Case("resume with a checkpoint for other learners", ["train", "--resume", "{tmp}/bad_run"],
         "was saved for modules", _copy_run(_other_learner)),
    Case("resume with a checkpoint for another env", ["train", "--resume", "{tmp}/bad_run"],
         "was saved for env 'CartPole-v1', but this model is for env 'Acrobot-v1'",
         _copy_run(_other_env)),
    Case("resume that changes the learner", ["train", "--resume", "{run}", "--learner", "fa"],
         "Only --steps (a new total) is allowed with --resume"),
    Case("checkpoint carrying a pickle payload, manifest rewritten", ["eval", "{tmp}/bad_run"],
         "is not a readable safetensors file", _copy_run(_forged(_pickle_payload))),
    Case("export of a folder that is not a run", ["export", "{tmp}"],
         "is not a biocredit run folder"),
    Case("export of a native agent's run", ["export", "{run}"],
         "is a native agent 'neuromodulated-ac', not an SB3 algorithm"),
    Case("PettingZoo env named without its prefix", [*AGENT, "--env", "mpe2.simple_spread_v3"],
         "Name PettingZoo envs with the prefix pettingzoo:, e.g. pettingzoo:mpe2.simple_spread_v3"),
    Case("PettingZoo prefix on a module that is no env", [*AGENT, "--env", "pettingzoo:os.path"],
         "'os.path' is not a PettingZoo env module"),
    Case("misspelt PettingZoo env", [*AGENT, "--env", "pettingzoo:mpe2.simple_sprad_v3"],
         "Did you mean 'simple_spread_v3'?"),
    Case("turn-based AEC env", [*AGENT, "--env", "pettingzoo:classic/tictactoe-v3"],
         "is a turn-based AEC env"),
    Case("AEC-only option on a parallel env",
         [*AGENT, "--env", SPREAD, "--set", "multiagent.aec_wrappers=[clip_out_of_bounds]"],
         "are AEC-only options"),
    Case("multi-agent option on a single-agent env",
         [*AGENT, "--set", "multiagent.scheme=shared"], "'multiagent' options apply to PettingZoo"),
    Case("independent learners with an SB3 algorithm",
         [*TRAIN, "--env", SPREAD, "--set", "multiagent.scheme=independent"],
         "every agent shares one policy"),
    Case("resume of a multi-agent SB3 run", ["train", "--resume", "{tmp}/bad_run"],
         "Multi-agent SB3 runs (PPO or A2C on a PettingZoo env) cannot be resumed",
         _copy_run(_pettingzoo_ppo)),
    Case("memory agent in a team", [*TRAIN, "--agent", "eqprop-memory-ac", "--env", SPREAD],
         "memory modules are not supported in multi-agent teams yet"),
    Case("--video on a multi-agent run", ["eval", "{tmp}/bad_run", "--video"],
         "--video is not supported for PettingZoo runs", _copy_run(_pettingzoo_env)),
    Case("missing multi-agent extra", [*AGENT, "--env", SPREAD],
         'Install the multi-agent extra: pip install "biocredit[multiagent]"',
         uninstalled=("mpe2",)),
    Case("missing MinAtar extra", [*TRAIN, "--env", "MinAtar/Breakout-v1"],
         'Install the MinAtar extra: pip install "biocredit[minatar]"',
         uninstalled=("minatar",)),
    Case("bench spec without envs", ["bench", "{tmp}/empty_spec.yaml"],
         "needs at least one entry under 'envs'", _write("empty_spec.yaml", "name: x\n")),
    Case("unknown bench backend", ["bench", "{tmp}/spec.yaml", "--backend", "slurm"],
         "Unknown bench backend 'slurm'", _write("spec.yaml", "envs: {CartPole-v1: {}}\n")),
    Case("--ray-address without the ray backend",
         ["bench", "{tmp}/spec.yaml", "--ray-address", "ray://head:10001"],
         "--ray-address is only used with --backend ray",
         _write("spec.yaml", "envs: {CartPole-v1: {}}\n")),
    Case("bench spec with an unknown algorithm", ["bench", "{tmp}/spec.yaml"],
         "Unknown algo 'sacc' in algo[1] in benchmark spec '",
         _write("spec.yaml", "algo: [ppo, sacc]\nenvs: {CartPole-v1: {}}\n")),
    Case("bench spec with a misspelt key", ["bench", "{tmp}/typo_spec.yaml"],
         "Unknown key 'learner' in benchmark spec",
         _write("typo_spec.yaml", "learner: [fa]\nenvs: {CartPole-v1: {}}\n")),
    Case("bench spec with a misspelt env option", ["bench", "{tmp}/env_spec.yaml"],
         "Unknown key 'treshold' in envs.CartPole-v1 in benchmark spec",
         _write("env_spec.yaml", "envs: {CartPole-v1: {treshold: 475}}\n")),
    Case("bench --set of a key the matrix chooses", ["bench", "{tmp}/spec.yaml", "--set", "seed=3"],
         "bench --set cannot change 'seed': each run of the matrix gets it from --seeds",
         _write("spec.yaml", "envs: {CartPole-v1: {}}\n")),
    Case("bench --set of an option one of its learners lacks",
         ["bench", "{tmp}/spec.yaml", "--set", "learner_kwargs.scale=0.5"],
         "Learner 'bp' does not accept these options",
         _write("spec.yaml", "envs: {CartPole-v1: {}}\n")),
    Case("bench --set of a misspelt key",
         ["bench", "{tmp}/spec.yaml", "--set", "eval_episode=5"],
         "Unknown key 'eval_episode'", _write("spec.yaml", "envs: {CartPole-v1: {}}\n")),
]
# fmt: on


def run_case(case: Case, tmp: Path, run: Path) -> tuple[int, str]:
    """Run one case through the CLI entry point; return (exit code, stderr)."""
    from biocredit.cli import main

    if case.setup is not None:
        case.setup(tmp, run)
    args = [a.replace("{tmp}", str(tmp)).replace("{run}", str(run)) for a in case.args]
    stderr = io.StringIO()
    with (
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
        _uninstalled(case.uninstalled),
    ):
        code = main(args)
    return code, stderr.getvalue().strip()


@contextlib.contextmanager
def _uninstalled(packages: Sequence[str]) -> Iterator[None]:
    """``import <package>`` fails inside (a ``None`` entry in ``sys.modules``); the modules
    already imported are put back afterwards."""
    hidden = {
        name: module
        for name, module in sys.modules.items()
        if any(name == p or name.startswith(p + ".") for p in packages)
    }
    for name in hidden:
        del sys.modules[name]
    for package in packages:
        sys.modules[package] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for package in packages:
            del sys.modules[package]
        sys.modules.update(hidden)


def make_run(folder: Path) -> Path:
    """A real, finished run to evaluate and corrupt."""
    from biocredit.cli import main

    run = folder / "run"
    args = [
        "train",
        "--agent",
        "neuromodulated-ac",
        "--steps",
        "256",
        "--n-envs",
        "2",
        "--set",
        "eval_episodes=1",
        "--out",
        str(run),
        "--no-progress",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    assert code == 0
    return run


def main() -> None:
    import tempfile

    rows = ["| # | bad input | command | exit | message |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as scratch:
        run = make_run(Path(scratch))
        for i, case in enumerate(CASES, 1):
            tmp = Path(scratch) / f"case{i}"
            tmp.mkdir()
            code, message = run_case(case, tmp, run)
            shown = " ".join(case.args).replace("|", "\\|")
            rows.append(
                f"| {i} | {case.what} | `biocredit {shown}` | {code} | "
                f"{message.replace('|', '/')} |"
            )
            assert not (tmp / MARKER).exists(), "a pickle payload was executed"
    out = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
    out.write_text(
        "# Bad inputs and what each gets\n\n"
        f"Generated by `python experiments/bad_inputs.py` ({len(CASES)} cases; each is also a "
        "test in `tests/test_bad_inputs.py`). Every one exits with code 2 and one paragraph on "
        "stderr, no traceback. `{run}` is a finished run folder, `{tmp}` a scratch folder.\n\n"
        + "\n".join(rows)
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
