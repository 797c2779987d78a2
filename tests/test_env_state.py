"""Env state as plain data: a plain object an env holds (as MinAtar's game) is captured whole and
restored into the new env's object, shared values come back shared, and what cannot be stored
exactly is refused with its place named, while configuration beside it is skipped as before."""

import collections
import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from biocredit.envs.state import EnvStateError, capture_env, restore_env


class Board:
    def __init__(self) -> None:
        self.random = np.random.RandomState()
        self.cells = np.zeros((3, 3))
        self.empty = np.zeros((0, 2), dtype=np.int64)


class Game:
    def __init__(self) -> None:
        self.board = Board()
        self.random = self.board.random
        self.pieces: list = []
        self.names = {"player": "a"}


class GameEnv(gym.Env):
    """A game held as plain objects, its RNG shared by two of them."""

    observation_space = spaces.Box(-np.inf, np.inf, (9,))
    action_space = spaces.Discrete(3)

    def __init__(self) -> None:
        self.game = Game()
        self.log = collections.deque([1, 2])  # not data, not in a plain object: skipped
        self.mode = gym.vector.AutoresetMode.NEXT_STEP  # a constant (an enum member): skipped

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.game.board.random = self.game.random = np.random.RandomState(seed)
        return self.game.board.cells.ravel(), {}

    def step(self, action):
        game = self.game
        cell = game.random.randint(9)
        game.board.cells.flat[cell] += action + game.random.rand()
        game.pieces.append((int(cell), np.int64(action), game.random.rand() < 0.5))
        game.names[f"move{len(game.pieces)}"] = str(action)
        return game.board.cells.ravel().copy(), float(game.random.rand()), False, False, {}


def played(env: gym.Env, steps: int = 20) -> list:
    return [env.step(step % 3)[:2] for step in range(steps)]


def test_a_plain_object_comes_back_whole_and_shared():
    env = GameEnv()
    env.reset(seed=3)
    played(env)
    state = json.loads(json.dumps(capture_env(env)))
    restored = GameEnv()
    restore_env(restored, state)
    game = restored.game
    assert game.random is game.board.random
    assert game.pieces == env.game.pieces
    assert [type(value) for piece in game.pieces for value in piece] == [int, np.int64, bool] * 20
    assert game.names == env.game.names
    assert game.board.empty.shape == (0, 2) and game.board.empty.dtype == np.int64
    for want, got in zip(played(env), played(restored), strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1] == want[1]


@pytest.mark.parametrize(
    ("hold", "where", "why"),
    [
        (lambda game: setattr(game, "log", collections.deque()), "game.log", "not plain data"),
        (lambda game: game.pieces.append(Board()), r"game.pieces\[0\]", "inside a container"),
        (lambda game: setattr(game.board, "rng", np.random), "game.board.rng", "not plain data"),
    ],
)
def test_what_cannot_be_stored_exactly_is_refused_by_its_place(hold, where, why):
    env = GameEnv()
    hold(env.game)
    with pytest.raises(EnvStateError, match=rf"'GameEnv\[0\]\.{where}' holds .*{why}"):
        capture_env(env)


def test_a_restored_object_must_be_the_same_kind():
    state = capture_env(GameEnv())
    env = GameEnv()
    env.game = Board()
    with pytest.raises(EnvStateError, match="is a Board in the new env but a Game"):
        restore_env(env, state)


class PatchedTimeLimit(gym.wrappers.TimeLimit):
    """What ``import rl_zoo3`` puts in Gymnasium's place: a subclass of ``TimeLimit``."""


@pytest.mark.parametrize(
    ("saved_with", "restored_with"),
    [(gym.wrappers.TimeLimit, PatchedTimeLimit), (PatchedTimeLimit, gym.wrappers.TimeLimit)],
)
def test_a_wrapper_replaced_by_a_subclass_still_restores(saved_with, restored_with):
    """Saved without the patch and restored with it, or the other way round."""
    env = saved_with(GameEnv(), max_episode_steps=50)
    env.reset(seed=1)
    played(env, steps=7)
    state = json.loads(json.dumps(capture_env(env)))
    restored = restored_with(GameEnv(), max_episode_steps=50)
    restore_env(restored, state)
    assert restored._elapsed_steps == 7


def test_a_different_wrapper_chain_is_refused_by_name():
    state = capture_env(gym.wrappers.TimeLimit(GameEnv(), max_episode_steps=50))
    saved = r"\['\w*TimeLimit', 'GameEnv'\]"  # \w*: the RL Zoo, if imported, patched it
    with pytest.raises(ValueError, match=rf"\['GameEnv'\] differs from the saved one {saved}"):
        restore_env(GameEnv(), state)


def test_a_layer_of_a_generic_class_restores():
    """A plain ``gym.Wrapper`` (its class among Gymnasium's generic bases) is still its kind."""
    env = gym.Wrapper(gym.wrappers.TimeLimit(GameEnv(), max_episode_steps=50))
    env.reset(seed=1)
    played(env, steps=5)
    restored = gym.Wrapper(gym.wrappers.TimeLimit(GameEnv(), max_episode_steps=50))
    restore_env(restored, json.loads(json.dumps(capture_env(env))))
    assert restored.env._elapsed_steps == 5
