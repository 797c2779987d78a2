"""MP4 videos of a policy: offscreen rendering (``render_mode="rgb_array"``) into ffmpeg.

MuJoCo renders through OpenGL. With a display, GLFW is used; without one, MuJoCo needs
``MUJOCO_GL=egl`` (library ``libEGL``, Debian/Ubuntu package ``libegl1``, GPU or Mesa) or
``MUJOCO_GL=osmesa`` (``libOSMesa``, package ``libosmesa6``, software). When ``MUJOCO_GL`` is not
set and there is no display, :func:`choose_gl_backend` picks the first of the two whose library
is installed; it must run before anything imports OpenGL. Classic-control envs render with
pygame. Frames are encoded by imageio's ffmpeg plugin: ``pip install 'biocredit[video]'``.

Gymnasium's MuJoCo envs render from a free camera by default, which stays where HalfCheetah,
Ant or Swimmer started while the robot runs out of view; a video of them is rendered from the
model's tracking camera (``camera_name="track"``, free camera where a model has none) unless the
run's env kwargs choose a camera.
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

from biocredit.errors import ConfigError

GL_LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa"}
GL_FIX = (
    "MuJoCo renders offscreen with EGL (apt-get install libegl1, then MUJOCO_GL=egl) or OSMesa "
    "(apt-get install libosmesa6, then MUJOCO_GL=osmesa); with a display, MUJOCO_GL=glfw."
)


def choose_gl_backend() -> str | None:
    """Set ``MUJOCO_GL`` (and PyOpenGL's platform) for offscreen rendering unless the user did
    or a display exists, then load MuJoCo's GL support; return the backend in force (``None``:
    GLFW on the display, or no library found). A backend that cannot load is a
    :class:`ConfigError` naming what to install."""
    backend = os.environ.get("MUJOCO_GL") or None
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if backend is None and headless:
        backend = next(
            (name for name, lib in GL_LIBRARIES.items() if ctypes.util.find_library(lib)), None
        )
        if backend is not None:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    try:
        import mujoco  # noqa: F401  (reads MUJOCO_GL once, on first import)
    except Exception as exc:  # a missing GL library surfaces as several exception types
        raise ConfigError(
            f"MuJoCo cannot load its OpenGL backend (MUJOCO_GL={backend or 'unset'}): "
            f"{type(exc).__name__}: {exc}. {GL_FIX}"
        ) from None
    return backend


CAMERA_KWARGS = ("camera_id", "camera_name", "default_camera_config")


def render_env_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` for rendering ``env_id`` into a video: ``render_mode="rgb_array"``, and for
    Gymnasium's MuJoCo envs the tracking camera when ``env_kwargs`` choose none."""
    kwargs = dict(env_kwargs, render_mode="rgb_array")
    try:
        entry_point = str(gym.spec(env_id).entry_point)
    except gym.error.Error:  # not a registered Gymnasium id: nothing to add
        return kwargs
    camera_chosen = any(key in kwargs for key in CAMERA_KWARGS)
    if entry_point.startswith("gymnasium.envs.mujoco") and not camera_chosen:
        kwargs["camera_name"] = "track"
    return kwargs


def require_video_extra() -> None:
    """A clear error naming the extra when imageio or its ffmpeg plugin is missing."""
    try:
        import imageio  # noqa: F401
        import imageio_ffmpeg  # noqa: F401  (imageio's ffmpeg plugin needs it)
    except ImportError:
        raise ConfigError(
            "--video needs imageio with its ffmpeg plugin, which are not installed. "
            "Install them with: pip install 'biocredit[video]' (imageio, imageio-ffmpeg)."
        ) from None


def open_writer(path: Path, fps: float) -> Any:
    """An imageio ffmpeg writer for ``path`` (H.264)."""
    require_video_extra()
    import imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    # even frame sizes for yuv420p; imageio pads other sizes up to a multiple of 2
    return imageio.get_writer(str(path), fps=fps, codec="libx264", macro_block_size=2)


def first_frame(render: Callable[[], Any], env_id: str, backend: str | None) -> Any:
    """The frame ``render()`` returns (an env made with ``render_mode="rgb_array"``, just
    reset); a rendering failure becomes a :class:`ConfigError` that names what the OS needs."""
    try:
        frame = render()
    except Exception as exc:  # GL and pygame failures come in many types
        if "pygame" in str(exc).lower() or isinstance(exc, ModuleNotFoundError):
            fix = "Classic-control envs render with pygame: pip install pygame."
        else:
            fix = GL_FIX
        raise ConfigError(
            f"Cannot render '{env_id}' offscreen (MUJOCO_GL={backend or 'unset'}): "
            f"{type(exc).__name__}: {str(exc).strip() or 'no message'}. {fix}"
        ) from None
    if frame is None:
        raise ConfigError(f"'{env_id}' returned no frame in render_mode='rgb_array'.")
    return frame


class FrameRecorder:
    """The frames of one env copy, written into an MP4 file as they come: the first rendering
    is checked (:func:`first_frame`), then the writer opens at the env's frame rate."""

    def __init__(self, path: Path, env_id: str, backend: str | None) -> None:
        self.path, self.env_id, self.backend = path, env_id, backend
        self.writer: Any = None
        self.frames = 0

    def add(self, render: Callable[[], Any], metadata: dict[str, Any]) -> None:
        """Append the frame ``render()`` returns; ``metadata``: the env's (its render_fps)."""
        if self.writer is None:
            frame = first_frame(render, self.env_id, self.backend)
            self.writer = open_writer(self.path, metadata.get("render_fps") or 30)
        else:
            frame = render()
        self.writer.append_data(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
