import os

from setuptools import find_packages, setup

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
}
extras["all"] = sorted({req for reqs in extras.values() for req in reqs})

setup(
    name="sb3_ibrl",
    packages=[package for package in find_packages() if package.startswith("sb3_ibrl")],
    package_data={"sb3_ibrl": ["py.typed", "version.txt"]},
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
