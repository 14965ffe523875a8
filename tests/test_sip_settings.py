"""SIP settings: SIP_LISTEN/SIP_ALLOW/RTP_PORTS parsed once into Settings, bad values named."""

from __future__ import annotations

import pytest

from bot.settings import Settings, SettingsError

BASE = {"TRIAL": "true"}


def test_sip_is_off_by_default_and_parsed_when_set():
    assert Settings.from_env(BASE).sip_listen == ()
    s = Settings.from_env(BASE | {"SIP_LISTEN": "udp:0.0.0.0:5060, tcp:[::]:5070", "SIP_ALLOW": "10.0.0.1,192.0.2.0/24",
                                  "RTP_PORTS": "20000-20100", "SIP_PUBLIC_IP": "198.51.100.7"})
    assert s.sip_listen == (("udp", "0.0.0.0", 5060), ("tcp", "::", 5070))
    assert s.sip_allow == ("10.0.0.1/32", "192.0.2.0/24")
    assert s.rtp_ports == (20000, 20100) and s.sip_public_ip == "198.51.100.7"
    assert "pw-secret" not in repr(Settings.from_env(BASE | {"SIP_LISTEN": "udp:0.0.0.0:5060", "SIP_USERNAME": "u", "SIP_PASSWORD": "pw-secret"}))


@pytest.mark.parametrize("env, needle", [
    ({"SIP_LISTEN": "udp:0.0.0.0"}, "SIP_LISTEN"),
    ({"SIP_LISTEN": "sctp:0.0.0.0:5060", "SIP_ALLOW": "10.0.0.1"}, "SIP_LISTEN"),
    ({"SIP_LISTEN": "udp:example.com:5060", "SIP_ALLOW": "10.0.0.1"}, "SIP_LISTEN"),
    ({"SIP_LISTEN": "udp:0.0.0.0:5060"}, "nobody may call"),
    ({"SIP_LISTEN": "udp:0.0.0.0:5060", "SIP_ALLOW": "10.0.0.300"}, "SIP_ALLOW"),
    ({"RTP_PORTS": "20000"}, "RTP_PORTS"),
    ({"RTP_PORTS": "100-200"}, "RTP_PORTS"),
    ({"SIP_USERNAME": "u"}, "SIP_PASSWORD"),
    ({"SIP_PUBLIC_IP": "bot.example.com"}, "SIP_PUBLIC_IP"),
])
def test_bad_sip_settings_are_named(env, needle):
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(BASE | env)
