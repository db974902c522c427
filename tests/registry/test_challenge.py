"""Parsing WWW-Authenticate challenges (C33, C34)."""

from __future__ import annotations

import pytest

from sandpull.registry import Challenge, parse_challenges

CASES = [
    pytest.param(
        ['Bearer realm="https://registry.ci.openshift.org/openshift/token"'],
        [
            Challenge(
                "bearer", {"realm": "https://registry.ci.openshift.org/openshift/token"}
            )
        ],
        id="C33 a bearer challenge with only a realm parses",
    ),
    pytest.param(
        [
            'Basic realm="registry", Bearer realm="https://auth.example/token",service="x"'
        ],
        [
            Challenge("basic", {"realm": "registry"}),
            Challenge(
                "bearer", {"realm": "https://auth.example/token", "service": "x"}
            ),
        ],
        id="C34A basic and bearer in one header are both kept",
    ),
    pytest.param(
        ['BASIC realm="Sonatype Nexus Repository Manager"'],
        [Challenge("basic", {"realm": "Sonatype Nexus Repository Manager"})],
        id="C34B an upper-case scheme is lowercased",
    ),
    pytest.param(
        ['Basic realm="harbor"'],
        [Challenge("basic", {"realm": "harbor"})],
        id="C34C a basic-only challenge parses",
    ),
    pytest.param(
        ["Basic realm=/"],
        [Challenge("basic", {"realm": "/"})],
        id="C34D an unquoted value parses",
    ),
    pytest.param(
        ['Bearer realm="https://a/t",scope="repository:x:pull,push",service="s"'],
        [
            Challenge(
                "bearer",
                {
                    "realm": "https://a/t",
                    "scope": "repository:x:pull,push",
                    "service": "s",
                },
            )
        ],
        id="a comma inside a quoted value stays in the value",
    ),
    pytest.param(
        ['Basic realm="a"', 'bearer REALM="https://t" , Service = "svc"'],
        [
            Challenge("basic", {"realm": "a"}),
            Challenge("bearer", {"realm": "https://t", "service": "svc"}),
        ],
        id="challenges of several headers are all kept with lowercase names",
    ),
    pytest.param(
        ['Bearer realm="say \\"hi\\""'],
        [Challenge("bearer", {"realm": 'say "hi"'})],
        id="escaped quotes are unescaped",
    ),
    pytest.param(
        ['Bearer realm="https://t",scope="aws"'],
        [Challenge("bearer", {"realm": "https://t", "scope": "aws"})],
        id="C35 a non-conforming scope value is kept as is",
    ),
    pytest.param([""], [], id="an empty header gives no challenge"),
]


@pytest.mark.parametrize(("headers", "expected"), CASES)
def test_parse_challenges(headers: list[str], expected: list[Challenge]) -> None:
    got = parse_challenges(headers)

    assert [(c.scheme, c.params) for c in got] == [
        (c.scheme, c.params) for c in expected
    ]
