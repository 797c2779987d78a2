"""`biocredit train` (same config resolution and seeding) plus a line per rollout: entropy, the
policy's output size (centred-logit rms, or Gaussian-mean rms), the gradient norm SB3's PPO clips
at max_grad_norm and the clip factor, hidden-unit saturation (|h| > 0.99) of the policy and value
networks, weight and feedback-matrix norms. Used for docs/notes/dfa_collapse.md.

    PYTHONPATH=. python experiments/dfa_collapse_diag.py ENV LEARNER STEPS SEED OUT [key=value ...]

key=value pairs are `--set` overrides (e.g. alignment_every=10, learner_kwargs.fan=layer), except
the controls of the second attempt:

- ``diag.freeze=hidden``: the policy's hidden layers get a zero update (their gradient is zeroed
  before SB3's clip), so only the policy head learns; ``diag.freeze=vf1``: the value network's
  first layer gets a zero update.

Each line after the first also splits the policy's change over the last rollout's training into
the part due to the head and the part due to the hidden layers: the entropy on the rollout's
observations with the new parameters (``new``), with only the head updated (``head``), with only
the hidden layers updated (``hid``), against the old (``old``); the norm of each layer's change;
the cosine between the head ``W_L`` and the feedback ``D_{L-1}`` (dfa); the mean normalised
advantage per action and the actions' frequencies in the rollout (``adv|a``, ``freq``); the spread
of the critic's values and of the raw advantages over the rollout (``V std``, ``A std``).
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import train

NORMS: list[float] = []
FROZEN: set[int] = set()  # ids of parameters whose update is zeroed (diag.freeze=hidden)
_clip = torch.nn.utils.clip_grad_norm_


def recording_clip(params, max_norm, *args, **kwargs):
    """SB3's clip_grad_norm_, recording the total norm before clipping (frozen grads zeroed)."""
    params = list(params)
    for p in params:
        if id(p) in FROZEN and p.grad is not None:
            p.grad.zero_()
    total = _clip(params, max_norm, *args, **kwargs)
    NORMS.append(float(total))
    return total


torch.nn.utils.clip_grad_norm_ = recording_clip  # SB3 looks it up at call time


def network_stats(net, obs):
    """Output, saturation per hidden layer, weight norms, feedback norms of a LocalNetwork."""
    with torch.no_grad():
        h, sat = obs, []
        for layer in net.layers[:-1]:
            a = layer(h)
            h = torch.tanh(a) if net.spec.activation == "tanh" else torch.relu(a)
            sat.append(round(float((h.abs() > 0.99).float().mean()), 2))
        y = net.layers[-1](h)
    weights = [round(float(layer.weight.norm()), 2) for layer in net.layers]
    feedback = [round(float(d.norm()), 2) for d in getattr(net.learner, "_feedback", [])]
    return y, sat, weights, feedback


def entropy_of(layers, obs, activation, swap=None):
    """Mean softmax entropy of ``layers`` on ``obs``; ``swap`` maps layer index -> (W, b)."""
    swap = swap or {}
    h = obs
    for i, layer in enumerate(layers):
        w, b = swap.get(i, (layer.weight, layer.bias))
        h = h @ w.t() + b
        if i < len(layers) - 1:
            h = torch.tanh(h) if activation == "tanh" else torch.relu(h)
    return float(torch.distributions.Categorical(logits=h).entropy().mean())


def split_change(net, obs, old):
    """Entropy with old/new/head-only/hidden-only parameters, and each layer's change norm."""
    layers, act = net.layers, net.spec.activation
    last = len(layers) - 1
    hidden_old = {i: old[i] for i in range(last)}
    with torch.no_grad():
        ent = {
            "old": entropy_of(layers, obs, act, old),
            "new": entropy_of(layers, obs, act),
            "head": entropy_of(layers, obs, act, hidden_old),
            "hid": entropy_of(layers, obs, act, {last: old[last]}),
        }
        dw = [float((layer.weight - old[i][0]).norm()) for i, layer in enumerate(layers)]
    return ent, dw


class Diagnostics(BaseCallback):
    def __init__(self, freeze: str | None = None) -> None:
        super().__init__()
        self.freeze = freeze
        self.old: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None

    def _on_training_start(self) -> None:
        net = self.model.policy.mlp_extractor.policy_net
        if self.freeze == "hidden":
            FROZEN.update(id(p) for layer in net.layers[:-1] for p in layer.parameters())
        if self.freeze == "vf1":
            value_net = self.model.policy.mlp_extractor.value_net
            FROZEN.update(id(p) for p in value_net.layers[0].parameters())

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        m = self.model
        obs = torch.as_tensor(m.rollout_buffer.observations)
        obs = obs.reshape(-1, m.observation_space.shape[0])
        nets = m.policy.mlp_extractor
        net = nets.policy_net
        y, pi_sat, pi_w, pi_d = network_stats(net, obs)
        split = ""
        if self.old is not None and isinstance(m.action_space, gym.spaces.Discrete):
            ent, dw = split_change(net, obs, self.old)
            parts = " ".join(f"{k}={v:.3f}" for k, v in ent.items())
            split = f" | split {parts} dW={[round(d, 3) for d in dw]}"
        self.old = {
            i: (l.weight.detach().clone(), l.bias.detach().clone())
            for i, l in enumerate(net.layers)
        }
        feedback = getattr(net.learner, "_feedback", [])
        if feedback:
            w, d = net.layers[-1].weight.detach().flatten(), feedback[-1].flatten()
            split += f" cos(W_L,D)={float(torch.dot(w, d) / (w.norm() * d.norm())):.2f}"
        _, vf_sat, vf_w, _ = network_stats(nets.value_net, obs)
        with torch.no_grad():
            entropy = float(m.policy.get_distribution(obs).entropy().mean())
        buf = m.rollout_buffer
        adv = buf.advantages.reshape(-1)
        spread = f" V std={buf.values.std():.1e} A std={adv.std():.1e}"
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # as PPO normalises it
        actions = buf.actions.reshape(-1).astype(int) if buf.actions.size == adv.size else None
        by_action = ""
        if actions is not None and isinstance(m.action_space, gym.spaces.Discrete):
            n = m.action_space.n
            mean = [
                round(float(adv[actions == a].mean()), 2) if (actions == a).any() else 0.0
                for a in range(n)
            ]
            freq = [round(float((actions == a).mean()), 2) for a in range(n)]
            by_action = f" adv|a={mean} freq={freq}"
        by_action += spread
        returns = [info["r"] for info in m.ep_info_buffer]
        ret = np.mean(returns) if returns else float("nan")
        if isinstance(m.action_space, gym.spaces.Discrete):
            c = y - y.mean(1, keepdim=True)
            out = f"logit_rms={float(c.pow(2).mean().sqrt()):.2f} max={float(c.abs().max()):.1f}"
        else:
            log_std = m.policy.log_std.detach().numpy().round(2)
            out = f"mean_rms={float(y.pow(2).mean().sqrt()):.2f} log_std={log_std}"
        norms = np.array(NORMS or [0.0])
        NORMS.clear()
        factor = np.minimum(1.0, m.max_grad_norm / np.maximum(norms, 1e-12))
        print(
            f"t={self.num_timesteps} rew={ret:.1f} ent={entropy:.3f} {out} | "
            f"gnorm med={np.median(norms):.2f} max={norms.max():.1f} "
            f"clipfactor med={np.median(factor):.3f} min={factor.min():.4f} | "
            f"pi sat={pi_sat} W={pi_w} D={pi_d} | vf sat={vf_sat} W={vf_w}{split}{by_action}",
            flush=True,
        )


def main() -> None:
    env_id, learner, steps, seed, out = sys.argv[1:6]
    flags = dict(env=env_id, learner=learner, steps=int(steps), seed=int(seed), out=out, threads=1)
    diag = dict(
        a.removeprefix("diag.").split("=", 1) for a in sys.argv[6:] if a.startswith("diag.")
    )
    overrides = [a for a in sys.argv[6:] if not a.startswith("diag.")]
    config = resolve_config(flags=flags, overrides=overrides)
    callback = Diagnostics(freeze=diag.get("freeze"))
    summary = train(config, progress=False, callbacks=[callback])
    print("final", summary.get("final_return_mean"))


if __name__ == "__main__":
    main()
