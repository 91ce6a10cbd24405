from swapd.http.listing import capability_fields, list_models
from swapd.http.settings import ApiSettings, Capabilities, ModelView, PeerView


def worked_example(include_aliases: bool = True) -> ApiSettings:
    llama = ModelView(
        "llama",
        name="Llama 3",
        aliases=("gpt-4o-mini",),
        metadata={"port": 9001, "architecture": "overridden"},
        capabilities=Capabilities(("text", "image"), ("text",), tools=True, context=32768),
    )
    return ApiSettings(
        models={"llama": llama, "hidden": ModelView("hidden", unlisted=True)},
        aliases={"gpt-4o-mini": "llama"},
        peers={"p1": PeerView("p1", "http://10.0.0.2:8080", ("remote",))},
        include_aliases_in_list=include_aliases,
    )


def test_worked_example() -> None:
    body = list_models(worked_example(), running=set(), created=1755880000)
    assert body["object"] == "list"
    ids = [r["id"] for r in body["data"]]
    assert ids == ["gpt-4o-mini", "llama", "p1/remote"]
    alias, llama, peer = body["data"]
    assert list(llama) == [
        "id",
        "object",
        "created",
        "owned_by",
        "name",
        "architecture",
        "capabilities",
        "supported_parameters",
        "context_length",
        "meta",
        "status",
    ]
    assert llama["architecture"] == {
        "input_modalities": ["text", "image"],
        "modality": "text+image->text",
        "output_modalities": ["text"],
    }
    assert llama["capabilities"] == {"function_calling": True, "vision": True}
    assert llama["meta"] == {
        "llamaswap": {"aliases": ["gpt-4o-mini"], "port": 9001, "type": "model"},
        "n_ctx": 32768,
    }
    assert alias["meta"]["llamaswap"] == {"modelID": "llama", "port": 9001, "type": "alias"}
    assert alias["name"] == "Llama 3"
    assert peer == {
        "id": "p1/remote",
        "object": "model",
        "created": 1755880000,
        "owned_by": "swapd",
        "name": "p1: remote",
        "meta": {"llamaswap": {"peerID": "p1", "type": "peer"}},
        "status": {"value": "unloaded"},
    }
    assert all(r["status"] == {"value": "unloaded"} for r in body["data"])


def test_status_and_aliases_flag() -> None:
    body = list_models(worked_example(include_aliases=False), running={"llama"}, created=1)
    assert [r["id"] for r in body["data"]] == ["llama", "p1/remote"]
    assert body["data"][0]["status"] == {"value": "loaded"}


def test_capability_flags() -> None:
    caps = Capabilities(("text", "audio", "image"), ("text", "audio", "image"), reranker=True)
    assert capability_fields(caps)["capabilities"] == {
        "audio_speech": True,
        "audio_transcriptions": True,
        "image_generation": True,
        "image_to_image": True,
        "reranker": True,
        "vision": True,
    }
    assert capability_fields(Capabilities()) == {}


def test_metadata_passes_through_without_capabilities() -> None:
    model = ModelView("m", metadata={"architecture": "x", "zeta": 1})
    body = list_models(ApiSettings(models={"m": model}), running=(), created=0)
    assert body["data"][0]["meta"] == {
        "llamaswap": {"architecture": "x", "type": "model", "zeta": 1}
    }
