import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

with open(os.path.join("sb3_ibrl", "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

with open("README.md", encoding="utf-8") as file_handler:
    long_description = file_handler.read()

# `imitation` is deliberately NOT declared: its pins (stable-baselines3~=2.2.1, gymnasium~=0.29) would
# downgrade SB3 and gymnasium. Install it with `pip install --no-deps imitation==1.0.1 tqdm` (see README).
extras = {
    "tests": ["pytest>=7", "ruff", "black", "tqdm", "h5py>=3.0"],
    "plot": ["matplotlib"],
    "tensorboard": ["tensorboard>=2.9.1"],
    "hdf5": ["h5py>=3.0"],
    # Simulated tasks of the paper (sb3_ibrl.envs); the versions tested together (metaworld pins mujoco 3.3.0).
    # Pixel observations also need an offscreen OpenGL library: `apt-get install libegl1 libegl-mesa0` or `libosmesa6`.
    "robosuite": ["robosuite==1.5.2"],
    "metaworld": ["metaworld==3.1.1"],
    # `python -m rl_zoo3.train --algo ibrl` (sb3_ibrl.zoo). rl-zoo3's optimization report needs pandas (< 3: numpy 1.x
    # stays), its `enjoy` needs requests, and rendering to the screen goes through gymnasium's pygame window.
    "zoo": ["rl_zoo3>=2.9.2,<3.0", "optuna>=3.0", "requests", "pandas>=2.2,<3", "pygame>=2.1"],
}
extras["all"] = sorted({req for reqs in extras.values() for req in reqs})

# rl-zoo3 start-up hook: a .pth file in site-packages whose line Python runs at start-up; it only installs an import
# hook (sb3_ibrl_zoo_hook.py) that registers IBRL with rl-zoo3 once rl-zoo3 is imported. Where the module cannot be
# found (an editable install whose source folder was deleted), the line does nothing instead of printing an error at
# every start of Python.
ZOO_HOOK_PTH = "sb3_ibrl_zoo.pth"
ZOO_HOOK_LINE = (
    "import os, importlib.util; os.environ.get('SB3_IBRL_NO_ZOO_HOOK') "
    "or importlib.util.find_spec('sb3_ibrl_zoo_hook') is None or __import__('sb3_ibrl_zoo_hook').install()\n"
)


class BuildPyWithZooHook(build_py):
    """build_py that also writes the rl-zoo3 start-up hook at the root of the installed tree (site-packages)."""

    def run(self) -> None:
        super().run()
        # Wheels: the root of build_lib is site-packages. Editable installs (PEP 660) discard build_lib and
        # assemble the wheel from install_lib.
        root = self.get_finalized_command("install").install_lib if getattr(self, "editable_mode", False) else self.build_lib
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, ZOO_HOOK_PTH), "w") as file_handler:
            file_handler.write(ZOO_HOOK_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, ZOO_HOOK_PTH)]


setup(
    name="sb3_ibrl",
    packages=[package for package in find_packages() if package.startswith("sb3_ibrl")] + ["sb3_ibrl.zoo.hyperparams"],
    # The rl-zoo3 config hyperparams/ibrl.yml is installed as sb3_ibrl/zoo/hyperparams/ibrl.yml
    package_dir={"sb3_ibrl.zoo.hyperparams": "hyperparams"},
    package_data={"sb3_ibrl": ["py.typed", "version.txt"], "sb3_ibrl.zoo.hyperparams": ["ibrl.yml"]},
    py_modules=["sb3_ibrl_zoo_hook"],
    cmdclass={"build_py": BuildPyWithZooHook},
    install_requires=[
        # The range tested in CI; NStepReplayBuffer (n-step returns) needs SB3 >= 2.9
        "stable_baselines3>=2.9.2,<3.0",
        "gymnasium>=1.4.0,<2.0",
        "torch>=2.8,<3.0",
        "numpy>=1.20,<3.0",
    ],
    extras_require=extras,
    description="Imitation Bootstrapped Reinforcement Learning (IBRL) for Stable-Baselines3",
    author="sb3-ibrl developers",
    url="https://github.com/sb3-ibrl/sb3-ibrl",
    keywords="reinforcement-learning imitation-learning robotics stable-baselines3 td3 ibrl",
    license="MIT",
    long_description=long_description,
    long_description_content_type="text/markdown",
    version=__version__,
    python_requires=">=3.10",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
)
