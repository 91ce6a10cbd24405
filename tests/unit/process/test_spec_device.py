"""A model with devices: ${DEVICE} and ${DEVICE_INDEX} filled in for the chosen one."""

from __future__ import annotations

from swapd.process.spec import ProcessSpec


def spec(devices: tuple[str, ...] = ("gpu0", "gpu1")) -> ProcessSpec:
    return ProcessSpec(
        model_id="m",
        argv=("srv", "--device", "${DEVICE}"),
        proxy_url="http://127.0.0.1:1",
        stop_argv=("stop", "${PID}", "${DEVICE_INDEX}"),
        env={"CUDA_VISIBLE_DEVICES": "${DEVICE_INDEX}"},
        devices=devices,
    )


def test_the_chosen_device_and_its_index_are_filled_in() -> None:
    placed = spec().on_device("gpu1")
    assert placed.argv == ("srv", "--device", "gpu1")
    assert placed.env == {"CUDA_VISIBLE_DEVICES": "1"}
    assert placed.stop_command(42) == ["stop", "42", "1"]


def test_no_choice_or_an_unknown_one_is_the_first_device() -> None:
    assert spec().on_device(None).argv[-1] == "gpu0"
    assert spec().on_device("gpu7").env == {"CUDA_VISIBLE_DEVICES": "0"}


def test_a_model_without_devices_is_left_as_it_is() -> None:
    s = spec(devices=())
    assert s.on_device("gpu1") is s
