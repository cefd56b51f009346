"""What the user's own git configuration says that lfsreg honours: ``http.sslCAInfo``.

git reads its system, global and XDG files (git-config(1), "FILES"); ``GIT_CONFIG_GLOBAL``,
``GIT_CONFIG_SYSTEM`` and ``GIT_CONFIG_NOSYSTEM`` move or drop them. The most specific file
wins, as in git. Files that cannot be read or parsed are skipped (git would stop; lfsreg only
looks for one setting and has others).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dulwich.config import ConfigFile

__all__ = ["http_ssl_cainfo"]


def _config_files(env: Mapping[str, str]) -> list[str]:
    """The configuration files of git outside any repository, most specific first."""
    home = env.get("HOME") or os.path.expanduser("~")
    if "GIT_CONFIG_GLOBAL" in env:
        files = [env["GIT_CONFIG_GLOBAL"]]
    else:
        xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        files = [os.path.join(home, ".gitconfig"), os.path.join(xdg, "git", "config")]
    if "GIT_CONFIG_SYSTEM" in env:
        files.append(env["GIT_CONFIG_SYSTEM"])
    elif "GIT_CONFIG_NOSYSTEM" not in env:
        files.append("/etc/gitconfig")
    return [f for f in files if f]


def http_ssl_cainfo(env: Mapping[str, str]) -> str | None:
    """``http.sslCAInfo`` of the user's git configuration (``~`` expanded as git does), else ``None``."""
    home = env.get("HOME") or os.path.expanduser("~")
    for path in _config_files(env):
        try:
            config = ConfigFile.from_path(path)
            value = config.get((b"http",), b"sslCAInfo")
        except (OSError, ValueError, KeyError):
            continue
        text = os.fsdecode(value).strip()
        if text:
            return home + text[1:] if text.startswith("~/") else text
    return None
