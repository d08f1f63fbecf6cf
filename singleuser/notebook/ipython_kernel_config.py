# IPython reads this file for every kernel it starts from this Python: the local spawner's .venv gets it at
# .venv/etc/ipython/ (deploy.dataset.install_kernel_config, run by ./run.sh and ./test.sh), a notebook image at
# /etc/ipython/. It runs the CFPS start-up files of the data folder, $CFPS_DATA_DIR/startup/*.py in name
# order, in the notebook's namespace; without CFPS_DATA_DIR (a kernel outside the hub) it does nothing.
# Why here and not in ~/.ipython/profile_default/startup/: that folder is in the student's home, which the
# image cannot fill and the student can edit; this path is part of the environment instead.
import glob
import os

_data = os.environ.get("CFPS_DATA_DIR", "")
if _data and os.path.isdir(os.path.join(_data, "startup")):
    c.InteractiveShellApp.exec_files = sorted(glob.glob(os.path.join(_data, "startup", "*.py")))  # noqa: F821
