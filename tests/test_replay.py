"""The replay buffer's n-step returns against sums written out by hand."""

import torch

from biocredit.agents.replay import ReplayBuffer, Transitions

GAMMA = 0.5


def filled_buffer() -> ReplayBuffer:
    """Two envs, interleaved, 4 steps each. Env 0: rewards 1, 2, 3, 4, its episode ends
    (terminated) at its 2nd step. Env 1: rewards 10, 20, 30, 40, truncated at its 3rd step.
    Observations are the step's global number, so each next_obs names its transition."""
    buffer = ReplayBuffer(capacity=16, obs_dim=1, action_dim=1)
    for t in range(4):
        reward = torch.tensor([1.0 + t, 10.0 * (t + 1)])
        terminated = torch.tensor([t == 1, False])
        ended = torch.tensor([t == 1, t == 2])
        obs = torch.tensor([[2.0 * t], [2.0 * t + 1]])
        buffer.add(Transitions(obs, torch.zeros(2, 1), reward, obs + 100, terminated), ended)
    return buffer


def test_n_step_returns_stop_at_the_episode_end_and_at_the_newest_transition():
    buffer = filled_buffer()
    # slots: env 0 at 0, 2, 4, 6; env 1 at 1, 3, 5, 7
    returns = buffer.n_step_returns(torch.tensor([0, 2, 4, 1, 3, 5, 6]), 3, GAMMA, n_envs=2)
    expected_reward = [
        1 + GAMMA * 2,  # env 0 from step 0: its episode terminates after step 1
        2,  # step 1 is the episode's last
        3 + GAMMA * 4,  # a new episode; only step 3 is stored after it
        10 + GAMMA * 20 + GAMMA**2 * 30,  # env 1: three steps, the last one truncated
        20 + GAMMA * 30,
        30,
        4,  # the newest transition of env 0
    ]
    torch.testing.assert_close(returns.reward, torch.tensor(expected_reward))
    torch.testing.assert_close(
        returns.discount, torch.tensor([GAMMA**m for m in (2, 1, 2, 3, 2, 1, 1)])
    )
    torch.testing.assert_close(
        returns.next_obs[:, 0], torch.tensor([102.0, 102.0, 106.0, 105.0, 105.0, 105.0, 106.0])
    )
    torch.testing.assert_close(returns.terminated, torch.tensor([1.0, 1.0, 0, 0, 0, 0, 0]))


def test_one_step_returns_are_the_stored_transitions():
    buffer = filled_buffer()
    index = torch.arange(8)
    returns = buffer.n_step_returns(index, 1, GAMMA, n_envs=2)
    stored = buffer.transitions(index)
    torch.testing.assert_close(returns.reward, stored.reward)
    torch.testing.assert_close(returns.next_obs, stored.next_obs)
    torch.testing.assert_close(returns.terminated, stored.terminated)
    torch.testing.assert_close(returns.discount, torch.full((8,), GAMMA))


def test_n_step_returns_follow_the_ring_across_its_wrap():
    buffer = ReplayBuffer(capacity=3, obs_dim=1, action_dim=1)
    for t in range(5):  # one env; slots hold steps 3, 4, 2 after the wrap
        obs = torch.tensor([[float(t)]])
        reward = torch.tensor([float(t)])
        buffer.add(
            Transitions(obs, obs, reward, obs + 1, torch.tensor([False])), torch.tensor([False])
        )
    returns = buffer.n_step_returns(torch.tensor([2]), 3, GAMMA, n_envs=1)  # step 2
    torch.testing.assert_close(returns.reward, torch.tensor([2 + GAMMA * 3 + GAMMA**2 * 4]))
    torch.testing.assert_close(returns.next_obs, torch.tensor([[5.0]]))


def test_returns_at_several_horizons_are_each_horizons_returns_in_the_order_asked():
    buffer = filled_buffer()
    index = torch.tensor([0, 1, 3])
    two, one = buffer.returns_at_horizons(index, (2, 1), GAMMA, n_envs=2)
    stored = buffer.transitions(index)
    torch.testing.assert_close(one.reward, stored.reward)
    torch.testing.assert_close(one.next_obs, stored.next_obs)
    # env 0 from step 0 (terminates after step 1); env 1 from steps 0 and 1
    torch.testing.assert_close(
        two.reward, torch.tensor([1 + GAMMA * 2, 10 + GAMMA * 20, 20 + GAMMA * 30])
    )
    torch.testing.assert_close(two.next_obs[:, 0], torch.tensor([102.0, 103.0, 105.0]))
    torch.testing.assert_close(two.discount, torch.full((3,), GAMMA**2))
