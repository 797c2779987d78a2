"""Active inference with predictive-coding networks: actions by expected free energy.

After the active neural generative coding agent (ANGC) of Ororbia & Mali (2022, "Backprop-free
reinforcement learning with active neural generative coding", AAAI), every network here learns
from prediction errors by learner ``pc``, by default with fixed predictions and mirror error
synapses: backprop's chain rule through mirrored weights, without weight transport:

- a generative **world model** ``m(s, a) -> (s' - s, c r)`` (``s`` the observation scaled to
  its bounds); its prediction error ``e`` on a transition, as the surprise of a Gaussian with a
  learned precision per output, ``S = mean_d (e_d^2 / var_d + log var_d) / 2`` (``var_d`` a
  running mean of ``e_d^2``), is the epistemic signal; the model learns from the
  precision-weighted error ``dS/dm = e / var`` (Friston 2005);
- an **instrumental value** ``Q(s, a)``, learned by double Q-learning (van Hasselt et al. 2016)
  on the (scaled) extrinsic reward, ``y = c r + gamma (1 - terminated) Q_target(s', a*)`` with
  ``a* = argmax_a' Q(s', a')`` chosen by the online network; with ``n_steps = n > 1``, from
  the ``n``-step return, ``y = c sum_{j<m} gamma^j r_{t+j} + gamma^m (1 - terminated_{t+m-1})
  Q_target(s_{t+m}, a*)``, ``m = n`` unless the episode (or the stored data) ends first; with
  a list ``n_steps = [n_1, ..., n_k]``, from the compound target ``y = mean_i y^(n_i)``
  (Sutton & Barto 2018, sec. 12.1; a compound return has less variance than the n-step return
  of the same contraction modulus: Daley, White & Machado 2024, "Averaging n-step returns
  reduces variance in reinforcement learning", ICML);
- an **epistemic value** ``E(s, a)``, learned the same way on the intrinsic reward
  ``k mean_d e_d^2 / (2 var_d)``, the part of ``S`` that differs between transitions (never cut
  at termination: the end of an episode does not end what can be learned),
  ``y_E = k e^2 / (2 var) + gamma_E E_target(s', a*_E)``.

The value networks learn from the Huber loss's derivative (the TD error clipped to
``+-error_clip``); each network's update is rescaled to a norm of at most ``max_grad_norm``,
as in SB3's DQN.

Actions minimise the expected free energy over candidate actions (all actions when discrete,
``candidates`` uniform samples from the box when continuous)::

    G(a) = -(Q(s, a) + w E(s, a)),    a_t = argmin_a G(a)

with the epistemic weight ``w`` decaying linearly from ``epistemic_weight`` to
``epistemic_weight_final`` over ``epistemic_decay_steps`` env steps.

Why a learned epistemic value instead of the world model's surprise at decision time: the
surprise of an action not taken is unknown (its outcome is never observed), and a world model
asked about it returns a prediction, not its own error. ``E`` is trained on observed surprise
and so estimates, per candidate action, the surprise to be expected from taking it and from
what follows (the TD target spreads it over the states that lead to surprising ones, which the
sparse-reward MountainCar needs). This is the decomposition of exploration-bonus agents with
separate intrinsic and extrinsic value heads (Burda et al. 2019), with ANGC's generative-model
error as the intrinsic signal; keeping ``Q`` and ``E`` apart lets ``w`` decay without
relearning ``Q``.

A replay buffer (``buffer_size`` transitions, saved with every checkpoint so a resumed run
continues exactly) feeds minibatches to every network; ``Q`` and ``E`` bootstrap from
target copies synchronised every ``target_update_interval`` updates (``target_tau < 1``: moved
that fraction of the way, Polyak averaging). The surprise in each
minibatch is recomputed by the current world model, so the intrinsic reward of old transitions
fades as the model learns them. Before ``learning_starts`` env steps, when no network has seen
any data and every action is equally informative, actions are uniform.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from biocredit.agents.active_inference_config import (
    ActiveInferenceConfig,
    active_inference_config_from_dict,
)
from biocredit.agents.base import OnlineAgent, check_box_observations, is_discrete_action
from biocredit.agents.networks import TrainedNetwork
from biocredit.agents.replay import NStepReturns, ReplayBuffer, Transitions
from biocredit.errors import ConfigError
from biocredit.learners import NetworkSpec

MIN_VARIANCE = 1e-8  # floor of the world model's error variance (its precision's ceiling)
MAX_NORMALISED_RANGE = 1e3  # observation bounds wider than this are left unscaled (CartPole's inf)


def expected_free_energy(instrumental: Tensor, epistemic: Tensor, weight: float) -> Tensor:
    """``G(a) = -(Q(s, a) + w E(s, a))`` for every candidate action (last dimension)."""
    return -(instrumental + weight * epistemic)


def select_action(free_energy: Tensor) -> Tensor:
    """Per row, the candidate with the least expected free energy (first one on ties)."""
    return free_energy.argmin(dim=-1)


def gaussian_surprise(squared_error: Tensor, variance: Tensor) -> Tensor:
    """``S = mean_d (e_d^2 / var_d + log var_d) / 2``, per transition (rows): the negative
    log-likelihood (up to a constant) of the observed outcome under the world model's Gaussian
    prediction with precision ``1 / var``. It falls as the model's errors (and so ``var``)
    shrink, and is large where an error is large for its precision."""
    return (squared_error / variance + variance.log()).mean(-1) / 2


def td_target(
    reward: Tensor, continues: Tensor, next_value: Tensor, gamma: float | Tensor
) -> Tensor:
    """Target ``r + gamma * continues * V(s')`` (``gamma^m`` and the ``m``-step return for an
    ``m``-step target)."""
    return reward + gamma * continues * next_value


def clipped_error(prediction: Tensor, target: Tensor, clip: float) -> Tensor:
    """``d/dq`` of the Huber loss with threshold ``clip``: the TD error clipped to +-clip."""
    return (prediction - target).clamp(-clip, clip)


class ActiveInferenceAgent(OnlineAgent):
    """World model, instrumental and epistemic values; actions by expected free energy.

    See the module docstring for the equations. Speaks the online loop's language (``act``,
    ``env_action``, ``learn``) and SB3's ``predict``.
    """

    config_from_dict = staticmethod(active_inference_config_from_dict)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        config: ActiveInferenceConfig,
        n_envs: int = 1,
    ) -> None:
        super().__init__()
        check_box_observations(observation_space)
        self.observation_space, self.action_space = observation_space, action_space
        self.config, self.n_envs = config, n_envs
        n_obs = int(np.prod(observation_space.shape))
        self.discrete = is_discrete_action(
            action_space,
            "the agent picks among all discrete actions or samples candidates from a box",
        )
        if self.discrete:
            self.n_actions = action_dim = int(action_space.n)
        else:
            action_dim = int(np.prod(action_space.shape))
            low = torch.as_tensor(action_space.low, dtype=torch.float32).flatten()
            high = torch.as_tensor(action_space.high, dtype=torch.float32).flatten()
            self.action_centre, self.action_half = (high + low) / 2, (high - low) / 2
            grid = torch.quasirandom.SobolEngine(action_dim, scramble=False)
            self.greedy_codes = grid.draw(config.candidates) * 2 - 1  # fixed, for deterministic
        self.obs_centre, self.obs_scale = self._observation_scaling(
            observation_space, config.normalize_observations
        )
        modules = config.modules
        value_in, value_out = (n_obs, action_dim) if self.discrete else (n_obs + action_dim, 1)

        def make(n_in: int, net_config: Any, n_out: int) -> TrainedNetwork:
            spec = NetworkSpec(n_in, tuple(net_config.hidden), n_out, net_config.activation)
            return TrainedNetwork(spec, net_config, config.gamma, n_envs)

        self.world_model = make(n_obs + action_dim, modules.world_model, n_obs + 1)
        self.value = make(value_in, modules.value, value_out)
        self.epistemic = make(value_in, modules.epistemic, value_out)
        self._trained = {
            "world_model": self.world_model,
            "value": self.value,
            "epistemic": self.epistemic,
        }
        self.networks = nn.ModuleDict({role: net.net for role, net in self._trained.items()})
        self.targets = nn.ModuleDict(
            {role: copy.deepcopy(self._trained[role].net.layers) for role in ("value", "epistemic")}
        )
        self.targets.requires_grad_(False)  # Polyak / hard copies, never trained
        self.replay = ReplayBuffer(config.buffer_size, n_obs, action_dim)
        self.register_buffer("error_variance", torch.ones(n_obs + 1))  # 1 / precision
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("update_rounds", torch.zeros((), dtype=torch.long))
        self.surprise = 0.0  # mean surprise of the last minibatch
        self._state: Tensor | None = None
        self._code: Tensor | None = None

    @staticmethod
    def _observation_scaling(space: spaces.Box, scale: bool) -> tuple[Tensor, Tensor]:
        """Centre and half-range of each bounded observation dimension (identity otherwise, and
        everywhere when ``scale`` is off)."""
        if not scale:
            n = int(np.prod(space.shape))
            return torch.zeros(n), torch.ones(n)
        low = np.asarray(space.low, dtype=np.float64).flatten()
        high = np.asarray(space.high, dtype=np.float64).flatten()
        with np.errstate(over="ignore", invalid="ignore"):
            half, centre = (high - low) / 2, (high + low) / 2
        bounded = np.isfinite(half) & (half > 0) & (half <= MAX_NORMALISED_RANGE)
        centre = np.where(bounded, centre, 0.0)
        half = np.where(bounded, half, 1.0)
        return torch.as_tensor(centre, dtype=torch.float32), torch.as_tensor(
            half, dtype=torch.float32
        )

    # the agent's interface to the online loop ---------------------------------------------

    def trained_networks(self) -> dict[str, TrainedNetwork]:
        """The module networks, by role."""
        return self._trained

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {role: net.optimizer for role, net in self._trained.items()}

    def learner_names(self) -> dict[str, str]:
        """Learners by role, for the run summary."""
        return {
            "learner": self.value.net.learner.name,
            "world_model_learner": self.world_model.net.learner.name,
            "epistemic_learner": self.epistemic.net.learner.name,
        }

    def diagnostics(self) -> dict[str, float]:
        """Values the online loop logs."""
        return {"agent/surprise": self.surprise, "agent/epistemic_weight": self.epistemic_weight}

    @property
    def epistemic_weight(self) -> float:
        """``w``, decayed linearly over ``epistemic_decay_steps`` env steps."""
        config = self.config
        done = min(1.0, int(self.steps) / max(config.epistemic_decay_steps, 1))
        start, final = config.epistemic_weight, config.epistemic_weight_final
        return start + (final - start) * done

    def normalise(self, obs: Tensor) -> Tensor:
        return (obs.reshape(obs.shape[0], -1) - self.obs_centre) / self.obs_scale

    # acting ------------------------------------------------------------------------------

    def free_energy(self, state: Tensor, codes: Tensor | None, weight: float) -> Tensor:
        """``G`` of each candidate: ``(batch, n_actions)`` for discrete actions (``codes`` is
        None), ``(batch, n_candidates)`` for the candidate codes ``(batch, n, action_dim)``."""
        inputs = state if codes is None else self._pairs(state, codes)
        shape = (state.shape[0], -1)
        q = self.value.infer(inputs).view(shape)
        if weight == 0.0:  # no epistemic term: E need not be evaluated
            return -q
        return expected_free_energy(q, self.epistemic.infer(inputs).view(shape), weight)

    @staticmethod
    def _pairs(state: Tensor, codes: Tensor) -> Tensor:
        """Every ``(s_i, c_ij)`` as rows: ``(batch * n, state_dim + action_dim)``."""
        n = codes.shape[1]
        states = state[:, None, :].expand(-1, n, -1)
        return torch.cat([states, codes], dim=2).reshape(state.shape[0] * n, -1)

    def _sample_codes(self, batch: int) -> Tensor:
        """``candidates`` uniform action codes in ``[-1, 1]^k`` per row."""
        return torch.rand(batch, self.config.candidates, len(self.action_centre)) * 2 - 1

    def _choose(self, state: Tensor, weight: float, greedy: bool) -> Tensor:
        """Action codes of least ``G``: one-hot rows (discrete) or codes in ``[-1, 1]^k``, among
        the fixed Sobol candidates (``greedy``) or freshly sampled ones."""
        if self.discrete:
            index = select_action(self.free_energy(state, None, weight))
            return nn.functional.one_hot(index, self.n_actions).float()
        if greedy:
            codes = self.greedy_codes.expand(state.shape[0], -1, -1)
        else:
            codes = self._sample_codes(state.shape[0])
        index = select_action(self.free_energy(state, codes, weight))
        return codes[torch.arange(state.shape[0]), index]

    def _action(self, code: Tensor) -> Tensor:
        if self.discrete:
            return code.argmax(1)
        return self.action_centre + self.action_half * code

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Actions of least expected free energy (uniform before ``learning_starts``)."""
        state = self.normalise(obs)
        if int(self.steps) < self.config.learning_starts:
            if self.discrete:
                index = torch.randint(0, self.n_actions, (state.shape[0],))
                code = nn.functional.one_hot(index, self.n_actions).float()
            else:
                code = self._sample_codes(state.shape[0])[:, 0]
        else:
            code = self._choose(state, self.epistemic_weight, greedy=False)
        self._state, self._code = state, code
        return self._action(code)

    def env_action(self, action: Tensor) -> np.ndarray:
        """Actions as the env takes them."""
        if self.discrete:
            return action.numpy()
        return action.reshape(-1, *self.action_space.shape).numpy()

    # learning ----------------------------------------------------------------------------

    @torch.no_grad()
    def learn(
        self,
        reward: Tensor,
        terminated: Tensor,
        next_obs: Tensor,
        done: Tensor,
        active: Tensor | None = None,
    ) -> None:
        """Store the transition just taken (``done``: its episode ended there, which bounds the
        n-step returns; the online loop passes each episode's final observation); every
        ``train_freq`` env steps, ``gradient_steps`` minibatch updates of every network.

        The replay buffer holds one transition per row and step (the n-step returns walk each
        row's own), so every row must be ``active``: in a multi-agent team this agent acts in
        envs whose agents stay to the end of each episode (the MPE envs)."""
        assert self._state is not None and self._code is not None, "act() first"
        if active is not None and not bool(active.all()):
            raise ConfigError(
                "The active-inference agent keeps one replay row per agent and cannot leave out "
                "the rows of agents that have left a multi-agent episode early. Use it on envs "
                "whose agents stay to the end of each episode (e.g. the MPE envs), or use "
                "neuromodulated-ac."
            )
        config = self.config
        self.replay.add(
            Transitions(self._state, self._code, reward, self.normalise(next_obs), terminated),
            done,
        )
        self.steps += reward.shape[0]
        if int(self.steps) < config.learning_starts:
            return
        due = (int(self.steps) - config.learning_starts) // config.train_freq + 1
        while int(self.update_rounds) < due:
            self.update_rounds += 1
            for _ in range(config.gradient_steps):
                index = self.replay.sample_index(config.batch_size)
                returns = self.replay.returns_at_horizons(
                    index, config.horizons, config.gamma, self.n_envs
                )
                self.update(self.replay.transitions(index), returns)

    def update(self, batch: Transitions, returns: list[NStepReturns] | None = None) -> None:
        """One minibatch update of world model, instrumental and epistemic value; ``Q``'s target
        the mean of the targets from each of ``returns`` (one-step from ``batch`` when None)."""
        config = self.config
        if returns is None:
            discount = torch.full_like(batch.reward, config.gamma)
            returns = [NStepReturns(batch.reward, batch.next_obs, batch.terminated, discount)]
        size = batch.obs.shape[0]
        for net in self._trained.values():
            net.optimizer.zero_grad(set_to_none=True)
        # world model: error of the predicted (s' - s, c r); its size per transition is S
        prediction = self.world_model.forward(torch.cat([batch.obs, batch.action], dim=1))
        model_error = prediction - self._outcome(batch)
        squared = model_error.square()
        self.error_variance.lerp_(squared.mean(0), 1.0 - config.precision_decay)
        self.error_variance.clamp_(min=MIN_VARIANCE)
        surprise = gaussian_surprise(squared, self.error_variance)
        self.surprise = float(surprise.mean())
        # the intrinsic reward leaves out log(var) / 2, the same for every transition at a time
        information = surprise - self.error_variance.log().mean() / 2
        # targets from the target copies, each value greedy in its own right
        targets = {"value": self._instrumental_target(returns)}
        next_e = self._double_q_value("epistemic", batch.next_obs)
        targets["epistemic"] = td_target(
            config.surprise_scale * information,
            torch.ones_like(surprise),
            next_e,
            config.epistemic_gamma,
        )
        # dS/dm: the precision-weighted prediction error, as predictive coding weights it
        model_grad = model_error / self.error_variance / model_error.shape[1]
        outputs, errors = [self.world_model.last_output], [model_grad / size]
        for role, target in targets.items():
            output, error = self._value_error(self._trained[role], batch, target)
            outputs.append(output)
            errors.append(error / size)
        with torch.enable_grad():
            torch.autograd.backward(outputs, errors)
        for net in self._trained.values():
            nn.utils.clip_grad_norm_(net.net.parameters(), config.max_grad_norm)
            net.optimizer.step()
        self.updates += 1
        if int(self.updates) % config.target_update_interval == 0:
            self._update_targets(config.target_tau)

    def _instrumental_target(self, returns: list[NStepReturns]) -> Tensor:
        """``Q``'s target: the mean over ``returns`` of ``c R + gamma^m (1 - terminated)
        Q_target(s_m, a*)``, every horizon's bootstrap value from one pass of the networks."""
        next_obs = torch.cat([part.next_obs for part in returns])
        next_q = self._double_q_value("value", next_obs).view(len(returns), -1)
        targets = [
            td_target(
                self.config.reward_scale * part.reward,
                1.0 - part.terminated,
                value,
                part.discount,
            )
            for part, value in zip(returns, next_q, strict=True)
        ]
        return torch.stack(targets).mean(0)

    @torch.no_grad()
    def _update_targets(self, tau: float) -> None:
        """Move each target copy the fraction ``tau`` of the way to its online network."""
        for role, layers in self.targets.items():
            online = self._trained[role].net.layers.parameters()
            for target, source in zip(layers.parameters(), online, strict=True):
                target.lerp_(source, tau)

    def _outcome(self, batch: Transitions) -> Tensor:
        """What the world model predicts: ``(s' - s, c r)``."""
        scaled_reward = self.config.reward_scale * batch.reward
        return torch.cat([batch.next_obs - batch.obs, scaled_reward[:, None]], dim=1)

    @torch.no_grad()
    def surprise_of(self, batch: Transitions) -> Tensor:
        """The world model's surprise ``S`` at each transition of ``batch`` (normalised
        observations, action codes), without learning from it."""
        prediction = self.world_model.infer(torch.cat([batch.obs, batch.action], dim=1))
        squared = (prediction - self._outcome(batch)).square()
        return gaussian_surprise(squared, self.error_variance)

    def _value_error(
        self, net: TrainedNetwork, batch: Transitions, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The network's attached output on the batch and its clipped TD error there. When the
        network outputs every action's value, only the taken action's output gets an error."""
        if self.discrete:
            output = net.forward(batch.obs)
            taken = nn.functional.one_hot(batch.action.argmax(1), self.n_actions).bool()
            error = clipped_error(output, target[:, None].expand_as(output), self.config.error_clip)
            error = torch.where(taken, error, torch.zeros_like(error))
        else:
            output = net.forward(torch.cat([batch.obs, batch.action], dim=1))
            error = clipped_error(output, target[:, None], self.config.error_clip)
        return net.last_output, error

    def _double_q_value(self, role: str, state: Tensor) -> Tensor:
        """``T(s', a*)``: the target copy's value of the action ``a*`` that the online network
        rates highest, over all actions or sampled candidates (double Q-learning)."""
        net = self._trained[role]
        layers = self.targets[role]
        if self.discrete:
            best = net.infer(state).argmax(1, keepdim=True)
            target = net.net.learner.forward_pass(layers, state, record=False)[0]
            return target.gather(1, best).squeeze(1)
        codes = self._sample_codes(state.shape[0])
        pairs = self._pairs(state, codes)
        best = net.infer(pairs).view(codes.shape[:2]).argmax(1, keepdim=True)
        target = net.net.learner.forward_pass(layers, pairs, record=False)[0]
        return target.view(codes.shape[:2]).gather(1, best).squeeze(1)

    # predicting --------------------------------------------------------------------------

    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """SB3-style prediction: the action of least ``G`` with the current ``w``, as in training.
        ``deterministic``: among a fixed Sobol set of candidates when actions are continuous
        (otherwise among freshly sampled ones; discrete choices are deterministic either way)."""
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32)
        single = obs.ndim == len(self.observation_space.shape)
        obs = obs.reshape(1 if single else obs.shape[0], -1)
        code = self._choose(self.normalise(obs), self.epistemic_weight, greedy=deterministic)
        action = self.env_action(self._action(code))
        return (action[0] if single else action), None
