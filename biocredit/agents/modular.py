"""A modular agent: perception -> memory -> policy (actor, critic), optional world model.

Each module is a local network with its own learner and optimizer, and everything learns
online, at every step, for every env in parallel (batch of one per env, no replay):

    f = perception(o),  s = (f, m) with m = memory(f, m_prev) (or s = f without memory)
    a ~ pi(.|s)
    delta = r + gamma (1 - terminated) v(s') - v(s)            the TD error
    actor  post = onehot(a) - pi(s)   (softmax)  or  (a - mu) / sigma^2   (Gaussian)
    critic post = 1
    modulator-driven learners: traces of post x pre, update M e with M = delta
    error-driven learners:     output error -delta * post through the autograd boundary
    world model: predicts (o', r) from (s, a); error (prediction - target), its size the
                 surprise; its input error, like the actor's and critic's, flows to perception
    signal-free perception (softhebb, hebbian, ff, pff): learns from o alone, features detached:
                 no error from the actor, critic or world model reaches it (optionally scaled
                 per env by sign(delta), ``modulator: td_sign``)

With hebbian3f in the actor and critic this is the three-factor TD(lambda) actor-critic of
Fremaux & Gerstner (2016) and Sutton & Barto (2018, section 13.5). A Gaussian policy's mean is
bounded to the action box, ``mu = centre + half_range * tanh(y)`` (so the output unit's post
term is ``(a - mu) / sigma^2 * half_range * (1 - tanh(y)^2)``), and its ``log_std``, kept in
``[LOG_STD_MIN, LOG_STD_MAX]``, is an output-level parameter with its own trace of
``(a - mu)^2 / sigma^2 - 1``. An ``eqprop`` memory (:mod:`biocredit.agents.memory`) learns from
the errors the actor, critic and world model send into ``m`` and keeps one state per env, reset
at episode start.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from biocredit.agents.base import OnlineAgent, check_box_observations, is_discrete_action
from biocredit.agents.config import AgentConfig, agent_config_from_dict
from biocredit.agents.memory import EqPropMemory
from biocredit.agents.networks import TrainedNetwork
from biocredit.agents.normalization import ObservationNorm
from biocredit.errors import ConfigError
from biocredit.learners import ConvSpec, NetworkSpec
from biocredit.learners.base import ModulatorDrivenLearner
from biocredit.optimizers import OPTIMIZERS

LOG_STD_MIN, LOG_STD_MAX = -3.0, 1.0


def _spec(n_in: int, config: Any, n_out: int) -> NetworkSpec:
    return NetworkSpec(n_in, tuple(config.hidden), n_out, config.activation)


def _perception_spec(shape: tuple[int, ...], config: Any) -> NetworkSpec | ConvSpec:
    """A dense perception network, or a conv one (``convs``) reading ``shape`` maps."""
    if config.convs is None:
        return _spec(int(np.prod(shape)), config, config.features)
    if len(shape) != 3:
        raise ConfigError(
            f"modules.perception.convs reads image observations of shape (channels, height, "
            f"width), got observation shape {shape}. Remove convs for vector observations; "
            "move an image's channels first with a wrapper."
        )
    return ConvSpec(
        shape,  # type: ignore[arg-type]
        tuple(config.convs),
        tuple(config.hidden),
        config.features,
        config.activation,
        config.pooling,
    )


class ModularAgent(OnlineAgent):
    """Modules wired perception -> memory -> policy, with an optional world model.

    Speaks SB3's ``predict(observation, state, episode_start, deterministic)``.
    """

    config_from_dict = staticmethod(agent_config_from_dict)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        config: AgentConfig,
        n_envs: int = 1,
    ) -> None:
        super().__init__()
        check_box_observations(observation_space)
        self.observation_space, self.action_space = observation_space, action_space
        self.config, self.n_envs = config, n_envs
        modules = config.modules
        n_obs = int(np.prod(observation_space.shape))
        self.discrete = is_discrete_action(
            action_space, "the Gaussian policy's mean is kept inside the box's finite bounds"
        )
        n_actions = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))

        def make(spec: NetworkSpec, net_config: Any) -> TrainedNetwork:
            return TrainedNetwork(spec, net_config, config.gamma, n_envs)

        self.obs_norm = ObservationNorm(n_obs) if config.normalize_observations else None
        self.perception = None
        self.perception_frozen = False
        state_dim = n_obs
        if modules.perception is not None:
            p = modules.perception
            self.perception = make(_perception_spec(observation_space.shape, p), p)
            self.perception_frozen = p.frozen
            state_dim = p.features
        self.memory = None
        if modules.memory is not None and modules.memory.learned:
            m = modules.memory
            self.memory = EqPropMemory(
                state_dim,
                n_envs,
                m.units,
                m.steps,
                m.beta,
                m.dt,
                m.self_excitation,
                m.recurrence,
                OPTIMIZERS[m.optimizer],
                m.lr,
                m.copy_gain,
                m.change_gain,
            )
            state_dim += m.units
        policy = modules.policy
        self.actor = make(_spec(state_dim, policy.actor, n_actions), policy.actor)
        self.critic = make(_spec(state_dim, policy.critic, 1), policy.critic)
        self.world_model = None
        if modules.world_model is not None:
            w = modules.world_model
            self.world_model = make(_spec(state_dim + n_actions, w, n_obs + 1), w)
        roles = {
            "perception": self.perception,
            "actor": self.actor,
            "critic": self.critic,
            "world_model": self.world_model,
        }
        self._trained = {role: net for role, net in roles.items() if net is not None}
        self._error_driven = [net for net in self._trained.values() if net.error_driven]
        self.networks = nn.ModuleDict({role: net.net for role, net in self._trained.items()})
        if config.ortho_init:  # SB3/baselines gains: near-uniform initial policy
            self.actor.net.init_orthogonal(np.sqrt(2), 0.01)
            self.critic.net.init_orthogonal(np.sqrt(2), 1.0)
        if config.zero_output_init:  # a uniform policy (Gaussian: the box centre), zero value
            for net in (self.actor, self.critic):
                nn.init.zeros_(net.net.layers[-1].weight)
                nn.init.zeros_(net.net.layers[-1].bias)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((n_actions,), config.log_std_init))
            self.register_buffer("log_std_trace", torch.zeros(n_envs, n_actions))
            self.log_std_optimizer = torch.optim.SGD([self.log_std], lr=config.log_std_lr)
            actor_learner = self.actor.net.learner
            self.log_std_decay = (  # the log_std trace decays like the actor's own traces
                actor_learner.trace_decay
                if isinstance(actor_learner, ModulatorDrivenLearner)
                else 0.0
            )
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32)
            self.centre, self.half_range = (self.high + self.low) / 2, (self.high - self.low) / 2
        self.surprise = 0.0  # mean squared world-model prediction error of the last step
        self._state: Tensor | None = None
        self._value: Tensor | None = None
        self._post: Tensor | None = None
        self._action_code: Tensor | None = None
        self._log_std_post: Tensor | None = None

    def trained_networks(self) -> dict[str, TrainedNetwork]:
        """The module networks present, by role."""
        return self._trained

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {role: net.optimizer for role, net in self._trained.items()}
        if self.memory is not None:
            optimizers["memory"] = self.memory.optimizer
        if not self.discrete:
            optimizers["log_std"] = self.log_std_optimizer
        return optimizers

    def learner_names(self) -> dict[str, str]:
        """Learners of the actor and critic (and of perception, when there is one), for the run
        summary."""
        names = {
            "learner": self.actor.net.learner.name,
            "critic_learner": self.critic.net.learner.name,
        }
        if self.perception is not None:
            names["perception_learner"] = self.perception.net.learner.name
        return names

    def guarded_modules(self) -> dict[str, nn.Module]:
        """The networks, the memory and a learned ``log_std``."""
        modules: dict[str, nn.Module] = dict(self.networks)
        if self.memory is not None:
            modules["memory"] = self.memory
        if not self.discrete:
            modules["log_std"] = nn.ParameterDict({"log_std": self.log_std})
        return modules

    def module_learners(self) -> dict[str, str]:
        """The networks' learners, and ``eqprop`` for a memory."""
        learners = super().module_learners()
        if self.memory is not None:
            learners["memory"] = "eqprop"
        return learners

    def diagnostics(self) -> dict[str, float]:
        """Values the online loop logs: the world model's surprise, the memory's residual (the
        largest change of a unit in the last step of its latest free phase)."""
        values = {} if self.world_model is None else {"agent/surprise": self.surprise}
        if self.memory is not None:
            values["memory/residual"] = self.memory.residual
        return values

    def encode(self, obs: Tensor) -> Tensor:
        """Observation normalisation (its statistics take in ``obs``), perception, then memory
        (committing its next state); keeps the autograd nodes, so errors sent into the result
        reach both. Observations are read as flat rows (a conv perception reads them as maps
        again)."""
        obs = obs.flatten(1)
        if self.obs_norm is not None:
            self.obs_norm.update(obs)
            obs = self.obs_norm(obs)
        features = obs
        if self.perception is not None and self.perception_frozen:
            features = self.perception.infer(obs)
        elif self.perception is not None:
            self.perception.forward(obs)
            features = self.perception.last_output
        if self.memory is None:
            return features
        with torch.enable_grad():
            return torch.cat([features, self.memory(features)], dim=1)

    def encode_infer(self, obs: Tensor, memory_start: Tensor | None = None) -> Tensor:
        """What :meth:`encode` would return, without recording or committing anything; the
        memory settles from ``memory_start`` (default: its committed state)."""
        obs = obs.flatten(1)
        if self.obs_norm is not None:
            obs = self.obs_norm(obs)
        features = obs if self.perception is None else self.perception.infer(obs)
        if self.memory is None:
            return features
        return torch.cat([features, self.memory.infer(features, memory_start)], dim=1)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Sample actions for a batch of observations and remember what learning needs."""
        self._state = self.encode(obs)
        out = self.actor.forward(self._state)
        self._value = self.critic.forward(self._state).squeeze(1)
        if self.discrete:
            probs = torch.softmax(out, dim=1)
            action = torch.multinomial(probs, 1).squeeze(1)
            code = torch.zeros_like(probs).scatter_(1, action[:, None], 1.0)
            self._post, self._action_code = code - probs, code
            return action
        squashed = torch.tanh(out)
        std = self.log_std.exp()
        noise = torch.randn_like(out)
        # (a - mu) / sigma^2 with a = mu + sigma * noise, times d mu / d y
        self._post = noise / std * self.half_range * (1.0 - squashed * squashed)
        self._log_std_post = noise * noise - 1.0
        action = self.centre + self.half_range * squashed + std * noise
        self._action_code = action
        return action

    def env_action(self, action: Tensor) -> np.ndarray:
        """Actions as the env takes them (Gaussian samples clipped to the Box)."""
        if self.discrete:
            return action.numpy()
        return torch.maximum(torch.minimum(action, self.high), self.low).numpy()

    @torch.no_grad()
    def learn(
        self,
        reward: Tensor,
        terminated: Tensor,
        next_obs: Tensor,
        done: Tensor,
        active: Tensor | None = None,
    ) -> Tensor:
        """One online update of every module from the step just taken; returns the TD errors.

        ``active`` (bool per row, default all) marks the rows that took a real step; the others
        (padding, e.g. an agent that has left a multi-agent episode) get a zero TD error and
        zero world-model error, so they change nothing, and count as done (traces cleared).
        """
        if active is not None:
            done = done | ~active
        for net in self._error_driven:
            net.optimizer.zero_grad(set_to_none=True)
        if self.memory is not None:
            self.memory.optimizer.zero_grad(set_to_none=True)
        next_value = self.critic.infer(self.encode_infer(next_obs)).squeeze(1)
        delta = reward + self.config.gamma * (~terminated) * next_value - self._value
        if active is not None:
            delta = delta * active
        outputs, errors = [], []
        for net, post in ((self.actor, self._post), (self.critic, torch.ones_like(delta)[:, None])):
            if net.modulated:
                net.modulate(post, delta)
            else:
                output, error = net.output_error(post, delta)
                outputs.append(output)
                errors.append(error)
        if self.world_model is not None:
            with torch.enable_grad():  # the input keeps perception's node
                model_input = torch.cat([self._state, self._action_code], dim=1)
            self.world_model.forward(model_input)
            target = torch.cat([next_obs.flatten(1), reward[:, None]], dim=1)
            output = self.world_model.last_output
            outputs.append(output)
            error = output.detach() - target  # d/dy of 0.5 ||y - target||^2
            errors.append(error if active is None else error * active[:, None])
            self.surprise = float(errors[-1].square().sum(1).mean())
        if outputs:
            with torch.enable_grad():
                torch.autograd.backward(outputs, errors)
        if (
            self.perception is not None
            and self.perception.signal_free
            and not self.perception_frozen
        ):
            self.perception.learn_from_inputs(self.perception_modulator(delta, active))
        for net in self._trained.values():
            net.optimizer.step()
        if self.memory is not None:
            self.memory.optimizer.step()
            self.memory.reset(done)
        if not self.discrete:
            trace = self.log_std_trace
            trace.mul_(self.log_std_decay).add_(self._log_std_post)
            self.log_std.grad = -torch.tensordot(delta, trace, dims=1)
            self.log_std_optimizer.step()
            self.log_std.clamp_(LOG_STD_MIN, LOG_STD_MAX)
            trace.mul_((~done).float()[:, None])
        if done.any():
            self.actor.end_episodes(done)
            self.critic.end_episodes(done)
        return delta

    def perception_modulator(self, delta: Tensor, active: Tensor | None) -> Tensor | None:
        """What a signal-free perception learns with: ``sign(delta)`` per env with ``modulator:
        td_sign``, else nothing; rows that took no real step (``active`` false) count 0."""
        perception = self.config.modules.perception
        assert perception is not None
        modulator = torch.sign(delta) if perception.modulator == "td_sign" else None
        if active is not None:
            modulator = active.float() if modulator is None else modulator * active
        return modulator

    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """SB3-style prediction: greedy (argmax / mean) when ``deterministic``.

        With a memory, ``state`` is its state (as returned by the last call; zeros when
        ``None``), rows where ``episode_start`` is true start from zero, and the new state is
        returned, as SB3's recurrent policies do; the agent's own training state is untouched.
        """
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32)
        single = obs.ndim == len(self.observation_space.shape)
        obs = obs.reshape(1 if single else obs.shape[0], -1)
        start = None
        if self.memory is not None:
            start = torch.zeros(obs.shape[0], self.memory.units)
            if state is not None:
                start = torch.as_tensor(np.asarray(state), dtype=torch.float32).reshape(start.shape)
            if episode_start is not None:
                fresh = torch.as_tensor(np.asarray(episode_start), dtype=torch.bool).reshape(-1)
                start = start * (~fresh).float()[:, None]
        encoded = self.encode_infer(obs, start)
        out = self.actor.infer(encoded)
        if self.discrete:
            action = out.argmax(1) if deterministic else torch.multinomial(out.softmax(1), 1)[:, 0]
        else:
            action = self.centre + self.half_range * torch.tanh(out)
            if not deterministic:
                action = action + self.log_std.exp() * torch.randn_like(out)
        action_np = self.env_action(action)
        new_state = None if self.memory is None else encoded[:, -self.memory.units :].numpy()
        return (action_np[0] if single else action_np), new_state
