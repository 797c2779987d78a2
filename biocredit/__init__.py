"""biocredit: reinforcement-learning agents that learn with biologically plausible credit
assignment.

Importing it registers the project's own Gymnasium envs under the namespace ``biocredit/``
(``gym.make("biocredit/CuedTMaze-v0")``); see :mod:`biocredit.envs`.
"""

__version__ = "0.1.0"

import biocredit.envs  # noqa: F401  (registers the envs)
