"""git's own configuration files name a CA bundle for lfsreg as for git (lfsreg.git.userconfig).

The end-to-end case (a push through the TLS front with ``http.sslCAInfo`` in ~/.gitconfig) is in
test_tls_env.py; these check which file wins, as git-config(1) orders them.
"""

from __future__ import annotations

from pathlib import Path

from lfsreg.git.userconfig import http_ssl_cainfo
from lfsreg.registry.location import ca_bundle_from


def _config(path: Path, value: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[http]\n\tsslCAInfo = {value}\n" if value else "[http]\n\tsslCAInfo =\n")
    return str(path)


def test_the_most_specific_file_wins(tmp_path):
    home = tmp_path / "home"
    system = _config(tmp_path / "etc" / "gitconfig", "/system.pem")
    env = {"HOME": str(home), "GIT_CONFIG_SYSTEM": system}
    assert http_ssl_cainfo(env) == "/system.pem"
    _config(home / ".config" / "git" / "config", "/xdg.pem")
    assert http_ssl_cainfo(env) == "/xdg.pem"
    _config(home / ".gitconfig", "~/global.pem")
    assert http_ssl_cainfo(env) == f"{home}/global.pem"
    assert http_ssl_cainfo({**env, "GIT_CONFIG_GLOBAL": _config(tmp_path / "other", "/other.pem")}) == "/other.pem"
    assert http_ssl_cainfo({"HOME": str(tmp_path / "nobody"), "GIT_CONFIG_NOSYSTEM": "1"}) is None


def test_an_empty_or_unreadable_setting_falls_through(tmp_path):
    home = tmp_path / "home"
    _config(home / ".gitconfig", "")  # git: an empty value resets the setting
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "config").write_bytes(b"[http\n\x00garbage")
    env = {"HOME": str(home), "GIT_CONFIG_SYSTEM": _config(tmp_path / "system", "/system.pem")}
    assert http_ssl_cainfo(env) == "/system.pem"


def test_git_users_variable_comes_before_their_config_and_requests_variables(tmp_path):
    home = tmp_path / "home"
    _config(home / ".gitconfig", "/config.pem")
    env = {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "REQUESTS_CA_BUNDLE": "/requests.pem", "SSL_CERT_FILE": "/openssl.pem"}
    assert ca_bundle_from({**env, "GIT_SSL_CAINFO": "/git.pem"}) == "/git.pem"
    assert ca_bundle_from(env) == "/config.pem"
    (home / ".gitconfig").unlink()
    assert ca_bundle_from(env) == "/requests.pem"
    assert ca_bundle_from({**env, "REQUESTS_CA_BUNDLE": ""}) == "/openssl.pem"
    assert ca_bundle_from({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}) is None
