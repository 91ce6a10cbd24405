from swapd.http.names import PeerNames, Resolver, Target
from swapd.http.settings import ApiSettings, ModelView, PeerView


def settings() -> ApiSettings:
    return ApiSettings(
        models={
            "llama": ModelView("llama"),
            "author/model": ModelView("author/model"),
            "author": ModelView("author"),
            "shared": ModelView("shared"),
        },
        aliases={"gpt-4o": "llama", "llama:high": "llama"},
        peers={
            "p1": PeerView("p1", "http://p1", ("remote", "dup", "shared", "remote")),
            "p2": PeerView("p2", "http://p2", ("dup", "p1/remote")),
        },
    )


def test_local_id_and_aliases() -> None:
    r = Resolver(settings())
    assert r.resolve("llama") == Target("local", "llama", "llama")
    assert r.resolve("gpt-4o") == Target("local", "gpt-4o", "llama")
    assert r.resolve("llama:high") == Target("local", "llama:high", "llama")


def test_peer_names() -> None:
    r = Resolver(settings())
    assert r.resolve("p1/remote") == Target("peer", "p1/remote", "remote", "p1")
    assert r.resolve("remote") == Target("peer", "remote", "remote", "p1")
    assert r.resolve("p2/dup") == Target("peer", "p2/dup", "dup", "p2")
    assert r.resolve("dup") is None, "a bare name listed by two peers is ambiguous"
    assert r.resolve("shared").kind == "local", "local always wins"
    assert r.resolve("nope") is None
    assert r.resolve("p1/remote").display == "p1/remote"


def test_bare_name_equal_to_an_fqn_is_not_bare() -> None:
    names = PeerNames.build(settings().peers)
    # p2 lists a model literally called "p1/remote", which is also p1's FQN.
    assert names.lookup("p1/remote") == ("p1", "remote")
    assert "p1/remote" not in names.bare


def test_match_path_longest_wins() -> None:
    r = Resolver(settings())
    match = r.match_path(["author", "model", "v1", "chat"])
    assert match is not None and match[0].model == "author/model" and match[1] == 2
    match = r.match_path(["author", "v1"])
    assert match is not None and match[0].model == "author" and match[1] == 1
    assert r.match_path(["zzz", "v1"]) is None
