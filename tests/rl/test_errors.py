"""The one error hierarchy: every module's old names are the same classes, catchable as before."""

import pytest

import agents.runner
import rl.backend
import rl.checkpoint
import rl.experiment
import rl.training
import transfer.torch_reader
from rl import errors


@pytest.mark.parametrize(
    ("old_name", "new_class", "builtin"),
    [
        (rl.checkpoint.CheckpointError, errors.CheckpointError, ValueError),
        (agents.runner.CheckpointError, errors.CheckpointError, ValueError),
        (transfer.torch_reader.CheckpointError, errors.CheckpointError, ValueError),
        (rl.training.NonFiniteLossError, errors.NonFiniteLossError, FloatingPointError),
        (agents.runner.NonFiniteLossError, errors.NonFiniteLossError, RuntimeError),
        (rl.experiment.ConfigError, errors.ConfigError, ValueError),
        (rl.backend.BackendError, errors.BackendError, RuntimeError),
    ],
)
def test_old_import_names_are_the_one_class(old_name, new_class, builtin):
    assert old_name is new_class
    with pytest.raises(errors.PlaygradError):
        raise old_name("x")
    with pytest.raises(builtin):  # code that caught the built-in before still catches it
        raise old_name("x")


def test_torch_reader_errors_are_checkpoint_errors():
    assert issubclass(transfer.torch_reader.CheckpointFormatError, errors.CheckpointError)
    assert issubclass(transfer.torch_reader.UnsafeCheckpointError, errors.CheckpointError)
    assert issubclass(rl.experiment.RunNotFoundError, errors.ConfigError)
