import pytest
import torch

# One intra-op thread: the tests' tensors are tiny, and on a 2-core machine shared with the
# browser test's Streamlit server (or other jobs) two spinning threads made them 5-10x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
