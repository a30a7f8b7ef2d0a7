"""jupyter lab for the full-flow UI test: the real securenb server extension on a fresh
workspace holding the example notebook; the kernel trains in bwrap and signs through it."""

import os
import shutil
from pathlib import Path
from tempfile import mkdtemp

from jupyterlab.galata import configure_jupyter_server

from securenb.core.workspace import Workspace
from securenb.data.kek import create_local_kek

c = get_config()  # type: ignore[name-defined]  # noqa: F821
configure_jupyter_server(c)

root = Path(os.environ.get("SECURENB_UI_REAL_ROOT") or mkdtemp(prefix="securenb-ui-real-"))
root.mkdir(parents=True, exist_ok=True)
os.environ["XDG_CONFIG_HOME"] = str(root.parent / (root.name + "-xdg"))
os.environ["SECURENB_EXAMPLE_PROJECT"] = str(root)
passphrase = os.environ.setdefault("SECURENB_KEY_PASSPHRASE", "ui test passphrase")  # test only
if not (root / ".securenb").exists():
    Workspace.init(root, passphrase)
# the datasets' KEK: the server holds it (it releases data keys to kernels); the example
# notebook encrypts its dataset with the same one ($SECURENB_KEK_URI, inherited)
os.environ["SECURENB_KEK_URI"] = f"file:{root / 'kek.b64'}"
if not (root / "kek.b64").exists():
    create_local_kek(os.environ["SECURENB_KEK_URI"])
example = Path(__file__).resolve().parent.parent / "notebooks" / "02-secure-training-pipeline.ipynb"
shutil.copy(example, root / "pipeline.ipynb")

c.ServerApp.root_dir = str(root)
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ.get("SECURENB_UI_REAL_PORT", "8898"))
c.ServerApp.allow_root = True
c.ServerApp.jpserver_extensions = {"securenb.server": True}
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
