"""
Offscreen camera rendering for the simulated tasks: picks an OpenGL backend that works and renders one
MuJoCo camera fast, on CPUs (Mesa's software rasteriser behind EGL or OSMesa) and on GPUs (EGL).

Backend (:func:`select_gl_backend`): a ``MUJOCO_GL`` set by the user is respected. Otherwise ``egl``
then ``osmesa`` are tried, each in a subprocess (a failing backend can crash or poison the process
that tries it), the first that renders is kept for the process and exported as ``MUJOCO_GL`` /
``PYOPENGL_PLATFORM`` (so that subprocesses, e.g. of a ``SubprocVecEnv``, inherit it). With a GPU and
its driver, EGL renders on the GPU (``MUJOCO_EGL_DEVICE_ID`` picks the device); with Mesa it renders
on the CPU. State-only observations never need any of this.

Speed (:class:`CameraRenderer`): 96x96 images are bound by the number of mesh vertices, not pixels,
on a software rasteriser. The renderer therefore turns off shadows (``light_castshadow`` and the
scene flag), reflections and multisampling (``model.vis.quality.offsamples = 0``), and does frustum
culling: geoms whose bounding sphere lies outside the camera's view are hidden before the scene is
built (the image is identical; a wrist camera skips most of the robot arm's meshes).
"""

import atexit
import importlib
import os
import subprocess
import sys
import weakref
from typing import Any, Optional

import gymnasium as gym
import numpy as np

GL_BACKENDS = ("egl", "osmesa")
INSTALL_HINT = (
    "Install an offscreen OpenGL backend: `apt-get install libegl1 libegl-mesa0` (EGL: CPU through Mesa, "
    "or the GPU with its driver) or `apt-get install libosmesa6` (OSMesa, CPU), or set MUJOCO_GL to a backend "
    "that works on this machine."
)
_DISABLED = ("disable", "disabled", "off", "false", "0")

# Backend chosen by a probe in this process (None: not probed yet)
_probed_backend: Optional[str] = None
# Open renderers, closed at exit before the GL libraries shut down (else their contexts fail to free noisily)
_open_renderers: "weakref.WeakSet[CameraRenderer]" = weakref.WeakSet()
_close_at_exit_registered = False


def _close_open_renderers() -> None:
    for renderer in list(_open_renderers):
        renderer.close()


_PROBE_CODE = """
import mujoco
from mujoco.{backend} import GLContext
ctx = GLContext(16, 16)
ctx.make_current()
model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="1"/></worldbody></mujoco>')
con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, con)
mujoco.mjr_render(mujoco.MjrRect(0, 0, 16, 16), mujoco.MjvScene(model, maxgeom=10), con)
con.free()
ctx.free()
print("render-ok")
"""


def probe_gl_backend(backend: str, timeout: float = 120.0) -> tuple[bool, str]:
    """
    Try to create a MuJoCo offscreen rendering context with ``backend`` in a fresh Python process.

    :param backend: ``"egl"`` or ``"osmesa"``
    :param timeout: seconds before the attempt counts as failed
    :return: whether it worked, and the reason when it did not
    """
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE.format(backend=backend)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    if result.returncode == 0 and "render-ok" in result.stdout:
        return True, ""
    lines = (result.stderr or result.stdout).strip().splitlines()
    return False, lines[-1] if lines else f"exit status {result.returncode}"


def select_gl_backend() -> str:
    """
    The OpenGL backend for offscreen rendering: ``MUJOCO_GL`` when set, otherwise the first of
    :data:`GL_BACKENDS` that works (probed once per process, then exported as ``MUJOCO_GL`` and
    ``PYOPENGL_PLATFORM``). Call it before the simulator (and thus mujoco) is imported.

    :return: the backend name (``MUJOCO_GL``'s value)
    :raises RuntimeError: when no backend works, with the packages to install
    """
    global _probed_backend
    user_choice = os.environ.get("MUJOCO_GL", "").strip().lower()
    if user_choice:
        if user_choice in _DISABLED:
            raise RuntimeError(f"MUJOCO_GL={user_choice!r} disables rendering, but pixel observations need it. {INSTALL_HINT}")
        if user_choice in GL_BACKENDS:
            os.environ.setdefault("PYOPENGL_PLATFORM", user_choice)
        return user_choice
    if _probed_backend is None:
        failures = []
        for backend in GL_BACKENDS:
            works, reason = probe_gl_backend(backend)
            if works:
                _probed_backend = backend
                break
            failures.append(f"MUJOCO_GL={backend}: {reason}")
        else:
            raise RuntimeError(
                "No OpenGL backend for offscreen rendering works (" + "; ".join(failures) + "). " + INSTALL_HINT
            )
    os.environ["MUJOCO_GL"] = _probed_backend
    os.environ["PYOPENGL_PLATFORM"] = _probed_backend
    return _probed_backend


def _gl_context_class(backend: str) -> Any:
    """The ``GLContext`` class of a backend (imported explicitly: it works even if mujoco was imported first)."""
    if backend in GL_BACKENDS:
        loaded_platform = getattr(sys.modules.get("OpenGL.platform"), "PLATFORM", None)
        loaded = type(loaded_platform).__name__.lower()
        if loaded_platform is not None and backend not in loaded:
            raise RuntimeError(
                f"PyOpenGL was already initialised for another platform ({loaded}) before MUJOCO_GL={backend} was chosen: "
                f"set MUJOCO_GL={backend} and PYOPENGL_PLATFORM={backend} before anything imports OpenGL."
            )
        return importlib.import_module(f"mujoco.{backend}").GLContext
    import mujoco

    return mujoco.GLContext


class CameraRenderer:
    """
    Renders one fixed camera of a MuJoCo model into ``uint8`` images, fast (see the module docstring).

    The model's shadow and multisampling settings are changed in place (they only affect rendering).

    :param model: the ``mujoco.MjModel`` to render
    :param data: the ``mujoco.MjData`` that holds the state to render (read at every :meth:`render`)
    :param camera: camera name
    :param width: image width in pixels
    :param height: image height in pixels
    :param geom_groups: geom groups to show (MuJoCo's default: groups 0, 1 and 2)
    :param rotate_180: rotate the image by 180 degrees, for a camera mounted upside down
    :param skybox: draw the skybox (off saves a little time where the sky is not visible)
    :param cull: hide geoms outside the camera's view before building the scene (same image, faster)
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        camera: str,
        width: int = 96,
        height: int = 96,
        geom_groups: tuple[int, ...] = (0, 1, 2),
        rotate_180: bool = False,
        skybox: bool = True,
        cull: bool = True,
    ) -> None:
        self.backend = select_gl_backend()
        import mujoco

        self._mujoco = mujoco
        self.model, self.data = model, data
        self.width, self.height = int(width), int(height)
        self.rotate_180 = rotate_180
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self.camera_id < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise ValueError(f"Unknown camera {camera!r}; the model has {names}")

        # Rendering-only model settings: no shadows, no multisampling (read when the context is created)
        model.light_castshadow[:] = 0
        model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)

        self._gl = _gl_context_class(self.backend)(self.width, self.height)
        self._gl.make_current()
        global _close_at_exit_registered
        if not _close_at_exit_registered:
            # Registered after the backend's own exit handler (added with its first context): runs before it
            atexit.register(_close_open_renderers)
            _close_at_exit_registered = True
        _open_renderers.add(self)
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=max(1000, 2 * model.ngeom))
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = int(skybox)
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = [int(group in geom_groups) for group in range(len(self._option.geomgroup))]
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = self.camera_id
        self._perturb = mujoco.MjvPerturb()
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._pixels = np.empty((self.height, self.width, 3), dtype=np.uint8)

        # Frustum culling: culled geoms are moved to a hidden group while the scene is built
        hidden = [group for group in range(len(self._option.geomgroup)) if not self._option.geomgroup[group]]
        self._cull_group = hidden[0] if (cull and hidden) else None
        self._geom_group = np.array(model.geom_group, copy=True)
        tan_y = np.tan(np.deg2rad(model.cam_fovy[self.camera_id]) / 2.0)
        tan_x = tan_y * self.width / self.height
        # Distance of a point to a side plane of the frustum = (|lateral| - depth * tan) * cos
        self._tan = np.array([tan_x, tan_y])
        self._cos = 1.0 / np.sqrt(1.0 + self._tan**2)
        self._radius = np.array(model.geom_rbound, copy=True) * 1.05 + 1e-3

    def _visible_geoms(self) -> np.ndarray:
        """Geoms whose bounding sphere intersects the camera's view frustum (geoms without a bound always count)."""
        position = self.data.cam_xpos[self.camera_id]
        rotation = self.data.cam_xmat[self.camera_id].reshape(3, 3)
        local = (self.data.geom_xpos - position) @ rotation  # camera frame: x right, y up, looking along -z
        depth = -local[:, 2]
        radius = self._radius
        inside = depth > -radius
        for axis in range(2):
            inside &= (np.abs(local[:, axis]) - depth * self._tan[axis]) * self._cos[axis] <= radius
        return inside | (self.model.geom_rbound <= 0)

    def _render_view(self) -> np.ndarray:
        """Render into the internal buffer and return an upright view of it (not a copy)."""
        mujoco = self._mujoco
        self._gl.make_current()
        if self._cull_group is not None:
            self.model.geom_group[:] = np.where(self._visible_geoms(), self._geom_group, self._cull_group)
        try:
            mujoco.mjv_updateScene(
                self.model, self.data, self._option, self._perturb, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
            )
        finally:
            if self._cull_group is not None:
                self.model.geom_group[:] = self._geom_group
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._pixels, None, self._rect, self._context)
        # OpenGL rows run bottom-up: flip them for an upright image, or mirror the columns for a camera mounted
        # upside down (a 180-degree rotation of the upright camera image)
        return self._pixels[:, ::-1] if self.rotate_180 else self._pixels[::-1]

    def render(self) -> np.ndarray:
        """
        Render the camera at the current state of ``data``.

        :return: an upright ``(height, width, 3)`` ``uint8`` image (a new array)
        """
        return np.ascontiguousarray(self._render_view())

    def render_chw(self) -> np.ndarray:
        """
        Render the camera at the current state of ``data``, channel-first.

        :return: an upright ``(3, height, width)`` ``uint8`` image (a new array)
        """
        return np.ascontiguousarray(self._render_view().transpose(2, 0, 1))

    def close(self) -> None:
        """Free the OpenGL resources (the renderer cannot be used afterwards)."""
        if getattr(self, "_gl", None) is None:
            return
        try:
            self._gl.make_current()
            self._context.free()
            self._gl.free()
        except Exception:  # the GL library already shut down: nothing left to free
            self._gl._context = None  # keeps the context's own __del__ from failing again
        self._gl = None
        _open_renderers.discard(self)

    def __del__(self) -> None:
        self.close()


class RenderedSimEnv(gym.Env):
    """
    Base of the simulated tasks: a simulation (``_sim``) seen through a :class:`CameraRenderer` for the
    observations (``_renderer``) and one for ``render()`` (``_video_renderer``); :meth:`close` frees all three.
    """

    _sim: Any = None
    _renderer: Optional[CameraRenderer] = None
    _video_renderer: Optional[CameraRenderer] = None

    def close(self) -> None:
        """Free the renderers and the simulation."""
        for renderer in (self._renderer, self._video_renderer):
            if renderer is not None:
                renderer.close()
        self._renderer = self._video_renderer = None
        if self._sim is not None:
            self._sim.close()
            self._sim = None
