import pytest
import torch

from resnet_explorer import DeviceUnavailableError, build_model, resolve_device
from resnet_explorer.devices import available_devices


def test_auto_picks_best_available():
    assert resolve_device("auto").type == available_devices()[0]
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_cuda_is_a_clear_error():
    with pytest.raises(DeviceUnavailableError, match="CUDA was requested but is not available"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailableError):
        build_model("resnet20", device="cuda")


def test_absent_mps_is_a_clear_error():
    if "mps" in available_devices():
        pytest.skip("this machine has MPS")
    with pytest.raises(DeviceUnavailableError, match="MPS"):
        resolve_device("mps")


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu9")


def test_model_lands_on_device():
    model = build_model("resnet20", device="cpu")
    assert next(model.parameters()).device.type == "cpu"
