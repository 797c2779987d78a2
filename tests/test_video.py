"""`biocredit eval RUN --video`: a real MP4 from offscreen rendering, and clear errors."""

import ctypes.util
import json
import os
import subprocess
import sys

import gymnasium as gym
import mujoco
import pytest

from biocredit.training.evaluation import evaluate_run
from biocredit.training.online import OnlineRun
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import SB3Run
from biocredit.training.video import render_env_kwargs

PROBE = """
from biocredit.training.video import choose_gl_backend
choose_gl_backend()
import gymnasium as gym
env = gym.make("InvertedPendulum-v5", render_mode="rgb_array")
env.reset(seed=0)
assert env.render() is not None
"""
# imageio's ffmpeg plugin made unimportable, as on an install without biocredit[video]
WITHOUT_FFMPEG = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "imageio_ffmpeg":
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
from biocredit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli(*args, env=None, code=None):
    command = (
        [sys.executable, "-c", code, *args]
        if code
        else [sys.executable, "-m", "biocredit.cli", *args]
    )
    return subprocess.run(
        command, capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})}
    )


def train(out, env_id):
    config = resolve_config(
        flags={"env": env_id, "learner": "fa", "steps": 64, "out": str(out)},
        overrides=["eval_episodes=1"],
    )
    SB3Run.start(config).run(progress=False)
    return out


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"offscreen MuJoCo rendering is not possible here: {probe.stderr[-300:]}")
    return train(tmp_path_factory.mktemp("video") / "run", "InvertedPendulum-v5")


@pytest.fixture(scope="module")
def native_cartpole_run(tmp_path_factory):
    """A native agent's run: evaluated and rendered on the Gymnasium vector env it trains on."""
    out = tmp_path_factory.mktemp("video") / "native"
    config = resolve_config(
        flags={"agent": "neuromodulated-ac", "env": "CartPole-v1", "steps": 64, "out": str(out)},
        overrides=["eval_episodes=1"],
    )
    OnlineRun.start(config).run(progress=False)
    return out


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """A run for the argument checks, which come before any rendering."""
    return train(tmp_path_factory.mktemp("video") / "run", "CartPole-v1")


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["pendulum_run", "cartpole_run", "native_cartpole_run"])
def test_eval_writes_a_readable_mp4(fixture, request, tmp_path):
    imageio = pytest.importorskip("imageio")
    pytest.importorskip("imageio_ffmpeg")
    if "cartpole" in fixture:
        pytest.importorskip("pygame")  # classic control renders with pygame
    run = request.getfixturevalue(fixture)
    video = tmp_path / "clips" / "policy.mp4"
    result = cli(
        "eval", str(run), "--video", "--video-path", str(video), "--episodes", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["video"] == str(video) and video.stat().st_size > 0
    frames = [frame for frame in imageio.get_reader(str(video), format="FFMPEG")]
    # one frame after the first reset and one after every step of the two episodes
    assert len(frames) == summary["video_frames"] == 1 + 2 * summary["length_mean"]
    assert frames[0].ndim == 3 and frames[0].shape[2] == 3 and max(f.max() for f in frames) > 0
    plain = evaluate_run(run, episodes=2)
    assert plain["returns"] == summary["returns"]  # rendering does not change the episodes


@pytest.mark.slow
def test_video_without_the_extra_names_it(cartpole_run, tmp_path):
    video = tmp_path / "x.mp4"
    result = cli(
        "eval", str(cartpole_run), "--video", "--video-path", str(video), code=WITHOUT_FFMPEG
    )
    assert result.returncode == 2
    assert "pip install 'biocredit[video]'" in result.stderr and "Traceback" not in result.stderr
    assert not video.exists()


@pytest.mark.slow
@pytest.mark.skipif(ctypes.util.find_library("OSMesa") is not None, reason="OSMesa is installed")
def test_video_without_a_renderer_names_the_fix(cartpole_run, tmp_path):
    result = cli(
        "eval",
        str(cartpole_run),
        "--video",
        "--video-path",
        str(tmp_path / "x.mp4"),
        env={"MUJOCO_GL": "osmesa"},
    )
    assert result.returncode == 2, result.stderr
    assert "MUJOCO_GL=osmesa" in result.stderr and "apt-get install libosmesa6" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_video_path_needs_video(cartpole_run, tmp_path):
    result = cli("eval", str(cartpole_run), "--video-path", str(tmp_path / "x.mp4"))
    assert result.returncode == 2 and "--video-path is only used with --video" in result.stderr


def test_mujoco_videos_follow_the_robot_with_the_tracking_camera():
    """Gymnasium's default free camera stays where HalfCheetah started; videos use the model's
    tracking camera unless the run chose a camera, and other envs only get rgb_array."""
    kwargs = render_env_kwargs("HalfCheetah-v5", {"ctrl_cost_weight": 0.1})
    assert kwargs == {"ctrl_cost_weight": 0.1, "render_mode": "rgb_array", "camera_name": "track"}
    env = gym.make("HalfCheetah-v5", **kwargs)
    model = env.unwrapped.model
    track = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
    assert track >= 0 and env.unwrapped.mujoco_renderer.camera_id == track
    env.close()
    assert render_env_kwargs("HalfCheetah-v5", {"camera_id": -1}) == {
        "camera_id": -1,
        "render_mode": "rgb_array",
    }
    assert render_env_kwargs("CartPole-v1", {}) == {"render_mode": "rgb_array"}
    assert render_env_kwargs("NoSuchEnv-v0", {}) == {"render_mode": "rgb_array"}
