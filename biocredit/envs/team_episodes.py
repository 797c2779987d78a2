"""Episode returns of a team: per agent, and their sum (the team return), per env copy."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any


class TeamEpisodes:
    """Accumulates each agent's rewards in each env copy; when a copy's episode ends (no agent
    left), its per-agent returns are kept as one finished episode (the last ``window``).

    The team return of an episode is the sum of its agents' returns, so per-agent returns always
    add up to the team return reported.
    """

    def __init__(self, n_copies: int, window: int = 100) -> None:
        self.running: list[dict[str, float]] = [{} for _ in range(n_copies)]
        self.lengths = [0] * n_copies
        self.finished: deque[dict[str, float]] = deque(maxlen=window)
        self.count = 0

    def add(self, copy: int, rewards: Mapping[str, float]) -> None:
        """One env step of copy ``copy``: every acting agent's reward."""
        running = self.running[copy]
        for agent, reward in rewards.items():
            running[agent] = running.get(agent, 0.0) + float(reward)
        self.lengths[copy] += 1

    def end(self, copy: int) -> dict[str, float]:
        """Close copy ``copy``'s episode; return its per-agent returns."""
        returns = self.running[copy]
        self.finished.append(returns)
        self.running[copy], self.lengths[copy] = {}, 0
        self.count += 1
        return returns

    def state(self) -> dict[str, Any]:
        """Everything kept, as plain data (JSON), for a resumed run."""
        return {
            "running": self.running,
            "lengths": self.lengths,
            "finished": list(self.finished),
            "count": self.count,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back what :meth:`state` returned."""
        self.running = [dict(returns) for returns in state["running"]]
        self.lengths = list(state["lengths"])
        self.finished.clear()
        self.finished.extend(dict(returns) for returns in state["finished"])
        self.count = state["count"]

    def team_returns(self) -> list[float]:
        return [sum(episode.values()) for episode in self.finished]

    def agent_returns(self, agent: str) -> list[float]:
        return [episode[agent] for episode in self.finished if agent in episode]
