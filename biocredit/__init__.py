"""biocredit: reinforcement-learning agents that learn with biologically plausible credit
assignment."""

__version__ = "0.1.0"
