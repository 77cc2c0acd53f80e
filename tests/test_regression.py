"""Regression against stored numbers (tests/data/regression.npz, made by tests/regression_data.py).

The tolerances allow for what differs between x86 CPUs (vector widths, oneDNN or Eigen
kernels, summation order), about 1e-6 relative in float32, and are far below any real change
of the method: a different window, padding, filter count, loss term or random draw moves
these values by 1e-2 or more.
"""

import numpy as np
import pytest

import regression_data

# (relative, absolute) tolerance per group of values.
TOLERANCES = {"signal": (1e-4, 1e-5), "network": (1e-3, 1e-5), "batches": (1e-4, 1e-5), "metrics": (0.0, 1e-3)}


@pytest.fixture(scope="module")
def stored():
    with np.load(regression_data.REFERENCE_FILE) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def computed():
    return regression_data.compute_all()


def test_the_same_values_are_computed_and_stored(stored, computed):
    assert sorted(computed) == sorted(stored)


@pytest.mark.parametrize("group", sorted(TOLERANCES))
def test_values_match_the_stored_reference(stored, computed, group):
    rtol, atol = TOLERANCES[group]
    names = [name for name in stored if name.startswith(group + "/")]
    assert names
    for name in names:
        assert computed[name].shape == stored[name].shape, name
        np.testing.assert_allclose(computed[name], stored[name], rtol=rtol, atol=atol, err_msg=name)


def test_the_comparison_notices_a_small_change(stored):
    # The check itself must be able to fail: one frame's padding moved by one row is far outside.
    padded = stored["signal/padded"]
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(np.roll(padded, 1, axis=0), padded, *TOLERANCES["signal"])
