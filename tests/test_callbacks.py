"""fastmlp.callbacks.EarlyStopping and what training says about it: the direction (``mode``),
any logged value as ``monitor``, the summary line printed when verbose, ``model.best_epoch``
and ``history["best_epoch"]``, and the validation metric's one name (``val_accuracy`` /
``val_r2``) in logs, history, printed lines and model files."""
import numpy as np
import pytest

import fastmlp
from fastmlp import MLP
from fastmlp.callbacks import Callback, EarlyStopping


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def scripted(values, key="score", snaps=None):
    """A callback that logs ``values[epoch - 1]`` under ``key`` (and records the parameters,
    so a test can compare the restored weights with those of an epoch)."""
    def log(model, epoch, logs):
        logs[key] = values[epoch - 1]
        if snaps is not None:
            snaps.append(model.params.copy())
    return log


# Best (highest) at epoch 4; lowest at epoch 1.
SCORES = [0.1, 0.5, 0.4, 0.6, 0.55, 0.58, 0.59, 0.2, 0.3, 0.7, 0.1, 0.1]


def train_with(stop, data, values=SCORES, epochs=12, verbose=False, snaps=None, key="score"):
    X, y = data
    model = MLP([3, 4, 1], lr=0.1, seed=0)
    model.train(X, y, epochs=epochs, verbose=verbose,
                callbacks=[scripted(values, key, snaps), stop])
    return model


# -- direction and monitor --------------------------------------------------------------------

def test_mode_max_stops_patience_epochs_after_the_highest_value(data):
    snaps = []
    stop = EarlyStopping("score", patience=3, mode="max")
    model = train_with(stop, data, snaps=snaps)
    # 0.6 at epoch 4, then 0.55, 0.58, 0.59 (no improvement): stops at epoch 7.
    assert (stop.best, stop.best_epoch, stop.stopped_epoch) == (0.6, 4, 7)
    assert len(model.history["loss"]) == 7
    assert stop.restored and model.best_epoch == model.history["best_epoch"] == 4
    np.testing.assert_array_equal(model.params, snaps[3])


def test_mode_min_on_the_same_values_stops_after_the_lowest(data):
    stop = EarlyStopping("score", patience=3, mode="min")
    model = train_with(stop, data)
    assert (stop.best, stop.best_epoch, stop.stopped_epoch) == (0.1, 1, 4)
    assert model.best_epoch == 1 and len(model.history["loss"]) == 4


def test_min_delta_in_mode_max(data):
    # With min_delta 0.15: 0.5 beats 0.1, 0.6 does not beat 0.5 + 0.15, nor does anything up
    # to epoch 9, so training stops at epoch 2 + 3.
    stop = EarlyStopping("score", patience=3, mode="max", min_delta=0.15)
    train_with(stop, data)
    assert (stop.best_epoch, stop.stopped_epoch) == (2, 5)


@pytest.mark.parametrize("monitor, direction", [
    ("val_accuracy", "max"), ("val_r2", "max"), ("val_auc", "max"), ("f1", "max"),
    ("val_loss", "min"), ("loss", "min"), ("lr", "min"), ("val_mae", "min"),
])
def test_auto_mode_picks_max_for_scores_and_min_otherwise(monitor, direction):
    assert EarlyStopping(monitor).direction == direction
    assert EarlyStopping(monitor, mode="min").direction == "min"


def test_auto_mode_on_a_score_stops_like_max(data):
    auto = EarlyStopping("val_accuracy", patience=3)
    train_with(auto, data, key="val_accuracy")
    assert (auto.best_epoch, auto.stopped_epoch) == (4, 7)


def test_monitor_the_learning_rate(data):
    # A constant rate never improves: stops after `patience` epochs, keeping epoch 1.
    stop = EarlyStopping("lr", patience=2)
    model = train_with(stop, data)
    assert (stop.best_epoch, stop.stopped_epoch, model.best_epoch) == (1, 3, 1)


def test_a_missing_key_names_the_logged_keys(data):
    X, y = data
    model = MLP([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match=r"'val_accuracy'.*\['loss', 'lr'\].*validation_data"):
        model.train(X, y, epochs=3, verbose=False, callbacks=[EarlyStopping("val_accuracy")])
    with pytest.raises(ValueError, match=r"'val_metric' was renamed.*'val_accuracy'"):
        model.train(X, y, epochs=3, verbose=False, validation_data=(X, y),
                    callbacks=[EarlyStopping("val_metric")])
    # A key that a callback adds is seen by the callbacks after it, not before.
    with pytest.raises(ValueError, match=r"'score'.*\['loss', 'lr'\]"):
        model.train(X, y, epochs=3, verbose=False,
                    callbacks=[EarlyStopping("score"), scripted(SCORES)])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mode="up"), ValueError, "mode"),
    (dict(monitor=3), TypeError, "monitor"),
    (dict(monitor=""), TypeError, "monitor"),
    (dict(patience=0), ValueError, "patience"),
    (dict(min_delta=-1.0), ValueError, "min_delta"),
    (dict(min_delta="0.1"), ValueError, "min_delta"),
])
def test_invalid_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        EarlyStopping(**kwargs)


def test_positional_arguments_keep_their_order():
    stop = EarlyStopping("loss", 4, 0.01, False, mode="max")
    assert (stop.monitor, stop.patience, stop.min_delta, stop.restore_best_weights,
            stop.mode) == ("loss", 4, 0.01, False, "max")
    assert repr(stop) == ("EarlyStopping(monitor='loss', mode='max', patience=4, "
                          "min_delta=0.01, restore_best_weights=False)")


# -- what training says -----------------------------------------------------------------------

def test_verbose_training_says_which_epoch_it_restored(data, capsys):
    train_with(EarlyStopping("score", patience=3, mode="max"), data, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and lines[0].startswith("Epoch  1/12 | loss ")
    assert lines[-1] == ("Early stopping: no improvement of score for 3 epochs; restored the "
                         "weights of epoch 4 (score 0.6).")


def test_quiet_training_says_nothing(data, capsys):
    model = train_with(EarlyStopping("score", patience=3, mode="max"), data, verbose=False)
    assert capsys.readouterr().out == "" and model.best_epoch == 4


def test_without_restoring_it_says_which_weights_it_kept(data, capsys):
    stop = EarlyStopping("score", patience=3, restore_best_weights=False, mode="max")
    snaps = []
    model = train_with(stop, data, verbose=True, snaps=snaps)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Early stopping: no improvement of score for 3 epochs; kept the weights of epoch 7; "
        "the best was epoch 4 (score 0.6).")
    assert not stop.restored and model.best_epoch == 4
    assert not np.array_equal(model.params, snaps[3])


def test_running_to_the_end_and_restoring_an_earlier_epoch_is_reported(data, capsys):
    values = [0.5, 0.1, 0.3, 0.2, 0.4]
    stop = EarlyStopping("score", patience=10, mode="min")
    model = train_with(stop, data, values=values, epochs=5, verbose=True)
    assert stop.stopped_epoch == 0 and stop.restored and model.best_epoch == 2
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Early stopping: not triggered in 5 epochs; restored the weights of epoch 2 "
        "(score 0.1).")


def test_a_monitor_that_is_always_nan_never_improves(data, capsys):
    stop = EarlyStopping("score", patience=2)
    model = train_with(stop, data, values=[np.nan] * 5, epochs=5, verbose=True)
    assert (stop.best_epoch, stop.stopped_epoch, model.best_epoch) == (0, 2, None)
    assert "best_epoch" not in model.history and len(model.history["loss"]) == 2
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Early stopping: no improvement of score for 2 epochs; no epoch had a comparable "
        "score; kept the weights of epoch 2.")


def test_when_the_last_epoch_is_the_best_nothing_is_reported(data, capsys):
    stop = EarlyStopping("score", patience=10, mode="max")
    model = train_with(stop, data, values=[0.1, 0.2, 0.3], epochs=3, verbose=True)
    assert not stop.restored and stop.summary() is None
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert model.best_epoch == model.history["best_epoch"] == 3


def test_without_early_stopping_best_epoch_is_none(data):
    X, y = data
    model = MLP([3, 4, 1], seed=0)
    assert model.best_epoch is None
    model.train(X, y, epochs=3, verbose=False, validation_data=(X, y))
    assert model.best_epoch is None and "best_epoch" not in model.history
    # A later run without early stopping forgets the earlier run's best epoch.
    model.train(X, y, epochs=6, verbose=False, callbacks=[EarlyStopping("loss", patience=2)])
    assert model.best_epoch is not None
    model.train(X, y, epochs=2, verbose=False)
    assert model.best_epoch is None and "best_epoch" not in model.history


def test_early_stopping_option_reports_the_best_validation_loss(capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    y = X[:, 0] + rng.normal(size=40)
    model = MLP([6, 32, 32, 1], lr=0.01, seed=0, loss="squared_error", optimizer="adam",
                early_stopping=True, patience=5, validation_fraction=0.3)
    model.train(X, y, epochs=300, batch_size=4, verbose=True)
    out = capsys.readouterr().out.splitlines()
    val = model.history["val_loss"]
    best = int(np.argmin(val)) + 1
    assert len(val) < 300 and model.best_epoch == model.history["best_epoch"] == best
    assert out[-1] == (f"Early stopping: no improvement of val_loss for 5 epochs; restored the "
                       f"weights of epoch {best} (val_loss {val[best - 1]:.5g}).")
    # The printed lines name the metric as the history does.
    assert " | val_r2 " in out[0] and "val_metric" not in "".join(out)
    assert f"val_r2 {model.history['val_r2'][0]:.4f}" in out[0]


# -- one name per metric ----------------------------------------------------------------------

class KeysSeen(Callback):
    def on_train_begin(self, model):
        self.keys = []

    def on_epoch_end(self, model, epoch, logs):
        self.keys.append(sorted(logs))


@pytest.mark.parametrize("loss, target, metric", [
    ("auto", lambda X: (X[:, 0] > 0).astype(int), "val_accuracy"),
    ("squared_error", lambda X: X[:, 0], "val_r2"),
])
def test_the_metric_has_one_name_in_logs_history_and_printed_lines(data, capsys, loss, target,
                                                                   metric):
    X, _ = data
    y = target(X)
    seen = KeysSeen()
    model = MLP([3, 4, 1], seed=0, loss=loss)
    model.train(X, y, epochs=2, verbose=True, validation_data=(X, y), callbacks=[seen])
    assert seen.keys == [sorted(["loss", "lr", "val_loss", metric])] * 2
    assert sorted(model.history) == sorted(["loss", "lr", "val_loss", metric])
    assert model.history[metric][-1] == model.score(X, y)
    line = capsys.readouterr().out.splitlines()[-1]
    assert f" | {metric} {model.history[metric][-1]:.4f} | " in line


def test_model_files_keep_best_epoch_and_read_the_old_metric_name(data, tmp_path):
    X, y = data
    model = MLP([3, 4, 1], lr=0.5, seed=0)
    model.train(X, y, epochs=40, verbose=False, validation_data=(X, y),
                callbacks=[EarlyStopping("val_accuracy", patience=3)])
    model.save(tmp_path / "m.npz")
    loaded = fastmlp.load(tmp_path / "m.npz")
    assert loaded.history == model.history and loaded.best_epoch == model.best_epoch >= 1
    # A file written before the rename: its "val_metric" comes back as "val_accuracy".
    old = dict(model.history)
    old["val_metric"] = old.pop("val_accuracy")
    del old["best_epoch"]
    model.history = old
    model.save(tmp_path / "old.npz")
    loaded = fastmlp.load(tmp_path / "old.npz")
    assert "val_metric" not in loaded.history and loaded.best_epoch is None
    assert loaded.history["val_accuracy"] == old["val_metric"]
