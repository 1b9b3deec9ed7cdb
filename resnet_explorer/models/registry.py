"""Named variants with their sources and the papers' reference numbers (read-only after import)."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from .spec import ModelSpec

HE2015 = "He et al. 2015, https://arxiv.org/abs/1512.03385"
HE2016 = "He et al. 2016, https://arxiv.org/abs/1603.05027"
TORCHVISION = "torchvision.models"


@dataclass(frozen=True)
class Variant:
    """A registered name, its source and, where the paper gives them, its reference numbers.

    Args:
        paper_params: parameters as the paper prints them (rounded, e.g. "0.85M").
        paper_error: test error in percent on `paper_dataset`.
    """

    name: str
    source: str
    paper_params: str = ""
    paper_error: float | None = None
    paper_dataset: str = ""

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_name(self.name)


_ENTRIES = [
    Variant("resnet18", f"{HE2015} Table 1; {TORCHVISION}", "11.7M"),
    Variant("resnet34", f"{HE2015} Table 1; {TORCHVISION}", "21.8M"),
    Variant("resnet50", f"{HE2015} Table 1; {TORCHVISION} (V1.5: stride on the 3x3)", "25.6M"),
    Variant("resnet101", f"{HE2015} Table 1; {TORCHVISION}", "44.5M"),
    Variant("resnet152", f"{HE2015} Table 1; {TORCHVISION}", "60.2M"),
    Variant("plain18", f"{HE2015} Fig. 4 (plain-18)"),
    Variant("plain34", f"{HE2015} Fig. 4 (plain-34)"),
    Variant("wide_resnet50_2", f"Zagoruyko & Komodakis 2016; {TORCHVISION}", "68.9M"),
    Variant("wide_resnet101_2", f"Zagoruyko & Komodakis 2016; {TORCHVISION}", "126.9M"),
    Variant("resnext50_32x4d", f"Xie et al. 2017; {TORCHVISION}", "25.0M"),
    Variant("resnext101_32x8d", f"Xie et al. 2017; {TORCHVISION}", "88.8M"),
    Variant("resnext101_64x4d", f"Xie et al. 2017; {TORCHVISION}", "83.5M"),
    Variant("resnet20", f"{HE2015} Table 6", "0.27M", 8.75, "CIFAR-10"),
    Variant("resnet32", f"{HE2015} Table 6", "0.46M", 7.51, "CIFAR-10"),
    Variant("resnet44", f"{HE2015} Table 6", "0.66M", 7.17, "CIFAR-10"),
    Variant("resnet56", f"{HE2015} Table 6", "0.85M", 6.97, "CIFAR-10"),
    Variant("resnet110", f"{HE2015} Table 6", "1.7M", 6.43, "CIFAR-10"),
    Variant("resnet1202", f"{HE2015} Table 6", "19.4M", 7.93, "CIFAR-10"),
    Variant("plain20", f"{HE2015} Fig. 6 (plain-20)"),
    Variant("plain32", f"{HE2015} Fig. 6 (plain-32)"),
    Variant("plain44", f"{HE2015} Fig. 6 (plain-44)"),
    Variant("plain56", f"{HE2015} Fig. 6 (plain-56)"),
    Variant("plain110", f"{HE2015} Sec. 4.2 (plain-110 fails to converge)"),
    Variant("preact_resnet110_basic", f"{HE2016} Table 2 (pre-activation ResNet-110)", "1.7M", 6.37, "CIFAR-10"),
    Variant("preact_resnet164", f"{HE2016} Table 3", "1.7M", 5.46, "CIFAR-10"),
    Variant("preact_resnet1001", f"{HE2016} Table 3", "10.2M", 4.92, "CIFAR-10"),
    Variant("resnet164_bottleneck", f"{HE2016} Table 3 (original post-activation ResNet-164)", "1.7M", 5.93, "CIFAR-10"),
    Variant("resnet1001_bottleneck", f"{HE2016} Table 3 (original post-activation ResNet-1001)", "10.2M", 7.61, "CIFAR-10"),
]

VARIANTS = MappingProxyType({v.name: v for v in _ENTRIES})


def list_variants() -> list[str]:
    """Registered names, ImageNet family first; any pattern name (resnet74, plain38) works too."""
    return list(VARIANTS)


def get_variant(name: str) -> Variant | None:
    """The registry entry for `name`, or None for names only the pattern knows."""
    return VARIANTS.get(name)
