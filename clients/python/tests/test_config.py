"""Where the client connects and how it trusts the node: no node needed."""

from __future__ import annotations

import pytest

from ohm import ConfigError
from ohm.config import resolve

FP = "sha256:" + "ab" * 32


def data_dir(tmp_path, token="ohm_demo"):
    d = tmp_path / "ohm-data"
    (d / "tls").mkdir(parents=True)
    (d / "tls" / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (d / "demo.token").write_text(token + "\n")
    (d / "admin.token").write_text("ohm_admin\n")
    return d


def test_a_connection_string_gives_everything():
    c = resolve(f"ohm://ohm_tok@db.example.com:7000?fingerprint={FP}&streams=8&timeout=2.5",
                env={})
    assert (c.host, c.port, c.token, c.fingerprint, c.ca) == (
        "db.example.com", 7000, "ohm_tok", FP, None)
    assert (c.streams, c.connect_timeout) == (8, 2.5)
    v6 = resolve(f"ohm://t@[::1]?fingerprint={FP}", env={})
    assert (v6.host, v6.port, v6.addr) == ("::1", 7450, "[::1]:7450")


def test_arguments_then_the_string_then_the_environment_then_the_data_directory(tmp_path):
    d = data_dir(tmp_path)
    env = {"OHM_ADDR": "10.0.0.1:1", "OHM_TOKEN": "ohm_env", "OHM_DATA": str(d)}
    c = resolve(env=env)
    assert (c.host, c.port, c.token, c.ca) == ("10.0.0.1", 1, "ohm_env",
                                               str(d / "tls" / "cert.pem"))
    c = resolve("ohm://ohm_url@10.0.0.2:2", env=env)
    assert (c.host, c.token) == ("10.0.0.2", "ohm_url")
    c = resolve("ohm://ohm_url@10.0.0.2:2", addr="10.0.0.3:3", token="ohm_arg", env=env)
    assert (c.host, c.port, c.token) == ("10.0.0.3", 3, "ohm_arg")
    c = resolve(env={"OHM_DATA": str(d)})
    assert (c.addr, c.token) == ("127.0.0.1:7450", "ohm_demo")
    c = resolve(f"ohm://127.0.0.1?data={d}&token_file=admin.token", env={})
    assert c.token == "ohm_admin"
    c = resolve(env={"OHM_DATA": str(d), "OHM_FINGERPRINT": FP})
    assert (c.fingerprint, c.ca) == (FP, None)


def test_missing_or_wrong_settings_say_what_and_where(tmp_path):
    with pytest.raises(ConfigError, match="no certificate to trust.*looked for"):
        resolve(data=tmp_path / "nothing", env={})
    with pytest.raises(ConfigError, match="no token.*OHM_TOKEN"):
        resolve(fingerprint=FP, data=tmp_path / "nothing", env={})
    with pytest.raises(ConfigError, match="not `sha256:` and 64 hex digits"):
        resolve(fingerprint="sha256:abc", token="t", env={})
    with pytest.raises(ConfigError, match="scheme must be ohm://"):
        resolve("postgres://t@h:1", env={})
    with pytest.raises(ConfigError, match="unknown parameter 'sslmode'"):
        resolve(f"ohm://t@h?fingerprint={FP}&sslmode=require", env={})
    with pytest.raises(ConfigError, match="either a fingerprint or a CA file"):
        resolve(f"ohm://t@h?fingerprint={FP}&ca=/etc/hosts", env={})
    with pytest.raises(ConfigError, match="no such file"):
        resolve("ohm://t@h?ca=/nonexistent.pem", env={})
    with pytest.raises(ConfigError, match="streams must be 1 to 64"):
        resolve(f"ohm://t@h?fingerprint={FP}&streams=65", env={})
    with pytest.raises(ConfigError, match="is not host:port"):
        resolve(f"ohm://t@h:notaport?fingerprint={FP}", env={})
    # The token never appears in an error about the string.
    with pytest.raises(ConfigError) as e:
        resolve("http://ohm_secret@h:1", env={})
    assert "ohm_secret" not in str(e.value)
