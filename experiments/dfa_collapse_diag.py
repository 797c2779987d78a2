"""`biocredit train` (same config resolution and seeding) plus a line per rollout: entropy, the
policy's output size (centred-logit rms, or Gaussian-mean rms), the gradient norm SB3's PPO clips
at max_grad_norm and the clip factor, hidden-unit saturation (|h| > 0.99) of the policy and value
networks, weight and feedback-matrix norms. Used for docs/notes/dfa_collapse.md.

    PYTHONPATH=. python experiments/dfa_collapse_diag.py ENV LEARNER STEPS SEED OUT [key=value ...]

key=value pairs are `--set` overrides (e.g. alignment_every=10, learner_kwargs.fan=layer).
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
_clip = torch.nn.utils.clip_grad_norm_


def recording_clip(params, max_norm, *args, **kwargs):
    """SB3's clip_grad_norm_, recording the total norm before clipping."""
    total = _clip(list(params), max_norm, *args, **kwargs)
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


class Diagnostics(BaseCallback):
    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        m = self.model
        obs = torch.as_tensor(m.rollout_buffer.observations)
        obs = obs.reshape(-1, m.observation_space.shape[0])
        nets = m.policy.mlp_extractor
        y, pi_sat, pi_w, pi_d = network_stats(nets.policy_net, obs)
        _, vf_sat, vf_w, _ = network_stats(nets.value_net, obs)
        with torch.no_grad():
            entropy = float(m.policy.get_distribution(obs).entropy().mean())
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
            f"pi sat={pi_sat} W={pi_w} D={pi_d} | vf sat={vf_sat} W={vf_w}",
            flush=True,
        )


def main() -> None:
    env_id, learner, steps, seed, out = sys.argv[1:6]
    flags = dict(env=env_id, learner=learner, steps=int(steps), seed=int(seed), out=out, threads=1)
    config = resolve_config(flags=flags, overrides=sys.argv[6:])
    summary = train(config, progress=False, callbacks=[Diagnostics()])
    print("final", summary.get("final_return_mean"))


if __name__ == "__main__":
    main()
