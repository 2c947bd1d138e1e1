"""Learning-rate schedules, callbacks (early stopping, checkpoints) and the fit
extensions (lr_schedule, augment, callbacks, early_stopping): schedule values
against their formulas, early stopping on scripted logs, restore-best, and a
checkpoint -> load -> resume that is bit-identical with a schedule and
augmentation."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import natverk
from natverk import augmentation as A
from natverk.callbacks import Callback, EarlyStopping, ModelCheckpoint
from natverk.layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from natverk.models import Sequential
from natverk.optimizers import SGD, Adam
from natverk.schedules import (
    SCHEDULE_CLASSES,
    Constant,
    CosineDecay,
    ExponentialDecay,
    Schedule,
    StepDecay,
    schedule_from_spec,
    schedule_to_spec,
)
from natverk.utils import exponential_decay
from synthetic import bars

# ------------------------------------------------------------------ data and models


def cnn(seed: int = 0) -> Sequential:
    """Conv + batch norm + dropout: every kind of state a resume must restore."""
    return Sequential(
        Conv2D(1, 3, 3, padding=1, seed=seed), BatchNorm2D(3), ReLU(), MaxPool2D(2),
        Flatten(), Dropout(0.2, seed=seed + 1), Dense(48, 2, seed=seed + 2),
    )


def mlp(seed: int = 0) -> Sequential:
    return Sequential(Flatten(), Dense(64, 8, seed=seed), ReLU(), Dense(8, 2, seed=seed + 1))


def state(model: Sequential) -> dict[str, np.ndarray]:
    out = {f"param/{n}": v.copy() for n, v, _ in model.parameters()}
    out.update({f"buffer/{n}": v.copy() for n, v in model.buffers()})
    if model.optimizer is not None:
        for n, st in model.optimizer.state_dict()["state"].items():
            out.update({f"opt/{n}/{k}": a for k, a in st.items()})
    return out


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


class Recorder(Callback):
    """Remembers the optimizer's learning rate, the logs and a weight snapshot after every epoch."""

    def __init__(self):
        self.lrs, self.logs, self.weights = [], [], []
        self.begun = self.ended = 0

    def on_train_begin(self, model, history):
        self.begun += 1

    def on_epoch_end(self, model, logs):
        self.lrs.append(model.optimizer.learning_rate)
        self.logs.append(dict(logs))
        self.weights.append({n: v.copy() for n, v, _ in model.parameters()})

    def on_train_end(self, model, history):
        self.ended += 1


class Script(Callback):
    """Feeds scripted values into the logs under ``key`` (for the callbacks after it)."""

    def __init__(self, key, values):
        self.key, self.values = key, list(values)

    def on_epoch_end(self, model, logs):
        logs[self.key] = self.values[logs["epoch"] - 1]


# ------------------------------------------------------------------ schedules


def test_schedules_follow_their_formulas():
    epochs = range(0, 40)
    exp = ExponentialDecay(0.1)
    assert exp.rate == 0.99999  # the thesis' factor
    for e in epochs:
        assert exp(e) == exponential_decay(0.1, e) == 0.99999**e * 0.1
    fast = ExponentialDecay(0.5, rate=0.9)
    assert [fast(e) for e in epochs] == [0.9**e * 0.5 for e in epochs]
    step = StepDecay(0.1, step_size=10, gamma=0.5)
    assert [step(e) for e in epochs] == [0.1 * 0.5 ** (e // 10) for e in epochs]
    assert step(9) == 0.1 and step(10) == 0.05 and step(39) == 0.1 * 0.125
    cos = CosineDecay(0.2, total_epochs=20, min_lr=0.01)
    for e in epochs:
        t = min(e, 20)
        assert cos(e) == pytest.approx(0.01 + 0.19 * (1 + math.cos(math.pi * t / 20)) / 2, rel=1e-15)
    assert cos(0) == 0.2 and cos(10) == pytest.approx(0.105) and cos(20) == 0.01 and cos(35) == 0.01
    assert CosineDecay(1.0, 4)(4) == 0.0
    assert [Constant(3e-3)(e) for e in epochs] == [3e-3] * 40


def test_schedule_config_round_trip_and_validation():
    for s in (Constant(0.01), ExponentialDecay(0.1, 0.95), StepDecay(0.1, 3, 0.5), CosineDecay(0.1, 7, 1e-4)):
        spec = schedule_to_spec(s)
        json.dumps(spec)  # JSON-able: stored in the model file
        again = schedule_from_spec(spec)
        assert again == s and type(again) is type(s) and again is not s
        assert type(s).from_config(s.to_config()) == s
        assert [again(e) for e in range(12)] == [s(e) for e in range(12)]
        assert repr(s).startswith(type(s).__name__ + "(")
    assert {"Constant", "ExponentialDecay", "StepDecay", "CosineDecay"} <= set(SCHEDULE_CLASSES)
    with pytest.raises(ValueError, match="unknown schedule class 'Warmup'"):
        schedule_from_spec({"class": "Warmup", "config": {}})
    with pytest.raises(ValueError, match="cannot build schedule StepDecay"):
        schedule_from_spec({"class": "StepDecay", "config": {"learning_rate": 0.1}})
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        StepDecay(0.1, 0)
    with pytest.raises(ValueError, match="learning_rate must be finite and >= 0"):
        Constant(-1.0)
    with pytest.raises(ValueError, match="rate must be finite and > 0"):
        ExponentialDecay(0.1, 0.0)
    with pytest.raises(ValueError, match="min_lr .* must not exceed"):
        CosineDecay(0.1, 10, min_lr=0.2)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        StepDecay(0.1, 2)(-1)


def test_a_custom_schedule_registers_itself():
    class Halving(Schedule):
        _config_keys = ("learning_rate",)

        def __init__(self, learning_rate):
            self.learning_rate = learning_rate

        def __call__(self, epoch):
            return self.learning_rate / 2**epoch

    try:
        assert schedule_from_spec(schedule_to_spec(Halving(1.0)))(3) == 0.125
    finally:
        del SCHEDULE_CLASSES["Halving"]


# ------------------------------------------------------------------ fit(lr_schedule=...)


def test_fit_sets_the_learning_rate_from_the_schedule_at_the_absolute_epoch():
    X, y = bars(40, seed=1)
    model = mlp()
    sched = StepDecay(0.08, step_size=2, gamma=0.5)
    rec = Recorder()
    h = model.fit(X, y, 3, 16, SGD(1.0), lr_schedule=sched, callbacks=[rec], seed=0, verbose=0)
    assert rec.lrs == h["lr"] == [0.08, 0.08, 0.04]
    assert model.lr_schedule is sched and model.optimizer.learning_rate == 0.04
    h = model.fit(X, y, 2, 16, callbacks=[rec], verbose=0)  # the schedule is kept: epochs 3, 4
    assert h["lr"] == [0.04, 0.02] and h["epoch"] == [4, 5]
    model.lr_schedule = None  # and can be dropped: the optimizer keeps its last rate
    h = model.fit(X, y, 1, 16, verbose=0)
    assert "lr" not in h and model.optimizer.learning_rate == 0.02


def test_a_schedule_really_drives_the_updates():
    X, y = bars(32, seed=2)
    a, b = mlp(), mlp()
    a.fit(X, y, 3, 8, SGD(0.05), lr_schedule=ExponentialDecay(0.05, rate=0.5), seed=3, verbose=0)
    # the same by hand: a new optimizer rate each epoch, state carried over
    opt = SGD(0.05)
    for e in range(3):
        opt.learning_rate = 0.05 * 0.5**e
        b.fit(X, y, 1, 8, opt, seed=3, verbose=0)
    assert_identical(state(a), state(b))


def test_fit_rejects_bad_schedules_augment_and_callbacks_before_training():
    X, y = bars(16, seed=3)
    model = mlp()
    before = state(model)
    with pytest.raises(TypeError, match="lr_schedule must be a natverk.schedules.Schedule"):
        model.fit(X, y, 1, 8, lr_schedule=lambda e: 0.1, verbose=0)
    with pytest.raises(TypeError, match="augment must be callable"):
        model.fit(X, y, 1, 8, augment=3, verbose=0)
    with pytest.raises(TypeError, match=r"callbacks\[0\] must be a natverk.callbacks.Callback"):
        model.fit(X, y, 1, 8, callbacks=[print], verbose=0)
    with pytest.raises(TypeError, match="early_stopping must be"):
        model.fit(X, y, 1, 8, early_stopping="yes", verbose=0)
    with pytest.raises(ValueError, match=r"monitors 'val_loss'.*pass validation_data"):
        model.fit(X, y, 1, 8, early_stopping=2, verbose=0)
    with pytest.raises(ValueError, match="it must keep the batch size"):
        model.fit(X, y, 1, 8, augment=lambda xb, rng: xb[:1], verbose=0)
    assert_identical(state(model), before)

    class Bad(Schedule):
        def __call__(self, epoch):
            return float("nan")

    try:
        with pytest.raises(ValueError, match="gave an invalid learning rate for epoch 0"):
            model.fit(X, y, 1, 8, lr_schedule=Bad(), verbose=0)
    finally:
        del SCHEDULE_CLASSES["Bad"]


# ------------------------------------------------------------------ fit(augment=...)


def test_augmentation_is_seeded_per_epoch_and_batch():
    X, y = bars(20, seed=4)
    seen = []

    def spy(xb, rng):
        seen.append((xb.copy(), rng.random()))
        return xb

    mlp().fit(X, y, 2, 8, SGD(0.0), augment=spy, seed=9, verbose=0)
    first = seen[1:]  # seen[0] is fit's shape probe
    seen.clear()
    mlp().fit(X, y, 2, 8, SGD(0.0), augment=spy, seed=9, verbose=0)
    second = seen[1:]
    assert len(first) == len(second) == 6  # 3 batches x 2 epochs
    for (xa, ra), (xb, rb) in zip(first, second):
        np.testing.assert_array_equal(xa, xb)
        assert ra == rb
    assert len({r for _, r in first}) == 6  # a different generator for every batch
    seen.clear()
    mlp().fit(X, y, 2, 8, SGD(0.0), augment=spy, seed=10, verbose=0)
    assert [r for _, r in seen[1:]] != [r for _, r in first]


def test_augmentation_changes_training_but_not_validation():
    X, y = bars(32, seed=5)
    aug = A.Compose([A.RandomHorizontalFlip(), A.RandomBrightness(0.3)])
    plain, augmented = cnn(), cnn()
    h1 = plain.fit(X, y, 2, 8, Adam(0.01), validation_data=(X, y), seed=1, verbose=0)
    h2 = augmented.fit(X, y, 2, 8, Adam(0.01), validation_data=(X, y), augment=aug, seed=1, verbose=0)
    assert h1["loss"] != h2["loss"]
    assert h2["val_loss"][-1] == augmented.evaluate(X, y)[0]  # validation on the un-augmented data
    # a crop that changes the image size works: fit probes the augmented shape
    small = Sequential(Flatten(), Dense(36, 2, seed=0))
    small.fit(X, y, 1, 8, SGD(0.1), augment=A.RandomCrop(6, padding=0), seed=0, verbose=0)


# ------------------------------------------------------------------ early stopping


def test_early_stopping_on_scripted_logs():
    model = mlp()
    es = EarlyStopping(monitor="val_loss", patience=2)
    history = {"epoch": [], "loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    es.on_train_begin(model, history)
    script = [1.0, 0.8, 0.9, 0.7, 0.75, 0.71, 0.72]
    stopped_after = None
    for epoch, value in enumerate(script, start=1):
        es.on_epoch_end(model, {"epoch": epoch, "val_loss": value})
        if model.stop_training:
            stopped_after = epoch
            break
    # best 0.7 at epoch 4; epochs 5 and 6 do not improve -> stop after epoch 6
    assert stopped_after == 6 and es.stopped_epoch == 6
    assert es.best_epoch == 4 and es.best_value == 0.7
    es.on_train_end(model, history)
    assert history["best_epoch"] == 4 and history["stopped_epoch"] == 6

    # accuracy-like numbers improve upwards; min_delta demands a real improvement
    model.stop_training = False
    es = EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.05)
    es.on_train_begin(model, history)
    for epoch, value in enumerate([0.5, 0.6, 0.62], start=1):
        es.on_epoch_end(model, {"epoch": epoch, "val_accuracy": value})
    assert model.stop_training and es.best_epoch == 2 and es.stopped_epoch == 3


def test_fit_stops_at_the_right_epoch_and_restores_the_best_weights():
    X, y = bars(48, seed=6)
    model = cnn(seed=1)
    rec = Recorder()
    # a made-up validation score: best at epoch 3, then 2 epochs without improvement
    script = Script("val_score", [0.1, 0.5, 0.9, 0.8, 0.85, 0.95, 0.99])
    es = EarlyStopping(monitor="val_score", patience=2)
    h = model.fit(X, y, 7, 16, Adam(0.01), callbacks=[script, rec], early_stopping=es, seed=0, verbose=0)
    assert h["epoch"] == [1, 2, 3, 4, 5] and model.epoch == 5
    assert h["stopped_epoch"] == 5 and h["best_epoch"] == 3
    assert "val_score" not in h  # the callbacks' additions do not alter the history
    assert rec.ended == 1
    now = {n: v for n, v, _ in model.parameters()}
    for n, v in rec.weights[2].items():  # epoch 3's weights are back...
        np.testing.assert_array_equal(now[n], v, err_msg=n)
    assert any(not np.array_equal(now[n], v) for n, v in rec.weights[4].items())  # ...not epoch 5's

    # restore_best=False keeps the last epoch's weights
    model = cnn(seed=1)
    rec = Recorder()
    es = EarlyStopping(monitor="val_score", patience=2, restore_best=False)
    h = model.fit(X, y, 7, 16, Adam(0.01), callbacks=[Script("val_score", script.values), rec, es], seed=0, verbose=0)
    assert h["stopped_epoch"] == 5
    for n, v, _ in model.parameters():
        np.testing.assert_array_equal(v, rec.weights[4][n])


def test_early_stopping_without_a_stop_and_with_real_validation_loss():
    X, y = bars(48, seed=7)
    Xv, yv = bars(48, seed=8)
    model = mlp()
    h = model.fit(X, y, 3, 16, Adam(0.01), validation_data=(Xv, yv), early_stopping=5, seed=0, verbose=0)
    assert h["stopped_epoch"] is None and len(h["epoch"]) == 3
    assert h["best_epoch"] == 1 + int(np.argmin(h["val_loss"]))


# ------------------------------------------------------------------ checkpoints and resuming


def test_model_checkpoint_every_and_best_only(tmp_path):
    X, y = bars(32, seed=9)
    model = mlp()
    every = ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}.npz", every=2)
    script = Script("val_score", [0.3, 0.2, 0.5, 0.4, 0.6])
    best = ModelCheckpoint(tmp_path / "best.npz", save_best_only=True, monitor="val_score")
    model.fit(X, y, 5, 16, SGD(0.1), callbacks=[every, script, best], seed=0, verbose=0)
    assert every.saved == [str(tmp_path / "ckpt-02.npz"), str(tmp_path / "ckpt-04.npz")]
    assert best.saved == [str(tmp_path / "best.npz")] * 3  # epochs 1, 3 and 5 improved
    assert natverk.load(tmp_path / "ckpt-04.npz").epoch == 4 and natverk.load(tmp_path / "best.npz").epoch == 5
    assert sorted(os.listdir(tmp_path)) == ["best.npz", "ckpt-02.npz", "ckpt-04.npz"]  # no temporary files
    with pytest.raises(ValueError, match="monitors 'val_loss'.*pass validation_data"):
        model.fit(X, y, 1, 16, callbacks=[ModelCheckpoint(tmp_path / "x.npz", save_best_only=True)], verbose=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_checkpoint_load_resume_is_bit_identical_with_schedule_and_augmentation(tmp_path, dtype):
    X, y = bars(40, seed=10)
    X = X.astype(dtype)
    aug = A.Compose([A.RandomHorizontalFlip(), A.RandomRotation(20), A.RandomCrop(8, padding=1),
                     A.RandomBrightness(0.2)])
    sched = StepDecay(0.02, step_size=2, gamma=0.5)

    uninterrupted = cnn(seed=3)
    h_full = uninterrupted.fit(X, y, 5, 16, Adam(0.02), lr_schedule=sched, augment=aug, seed=4, verbose=0)

    first = cnn(seed=3)
    ckpt = ModelCheckpoint(tmp_path / "epoch{epoch}.npz")
    first.fit(X, y, 3, 16, Adam(0.02), lr_schedule=sched, augment=aug, callbacks=[ckpt], seed=4, verbose=0)
    resumed = natverk.load(tmp_path / "epoch3.npz")
    assert resumed.epoch == 3 and resumed.lr_schedule == sched
    assert resumed.optimizer.learning_rate == sched(2)  # the rate of the last trained epoch
    h_rest = resumed.fit(X, y, 2, 16, augment=aug, verbose=0)  # optimizer, schedule, seed from the file
    assert h_rest["epoch"] == [4, 5] and h_rest["lr"] == h_full["lr"][3:] == [0.01, 0.005]
    assert h_rest["loss"] == h_full["loss"][3:]
    assert_identical(state(resumed), state(uninterrupted))

    # continuing the same object (no file) is identical too
    first.fit(X, y, 2, 16, augment=aug, verbose=0)
    assert_identical(state(first), state(uninterrupted))

    # and the augmentation and schedule matter: without them the weights differ
    plain = cnn(seed=3)
    plain.fit(X, y, 5, 16, Adam(0.02), lr_schedule=sched, seed=4, verbose=0)
    assert not np.array_equal(state(plain)["param/6.W"], state(uninterrupted)["param/6.W"])


def test_model_files_store_the_schedule(tmp_path):
    X, y = bars(16, seed=11)
    model = mlp()
    model.fit(X, y, 1, 8, SGD(0.1), lr_schedule=CosineDecay(0.1, 10), seed=0, verbose=0)
    path = model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["__natverk__"]))
    assert meta["lr_schedule"] == {"class": "CosineDecay", "config": {"learning_rate": 0.1, "total_epochs": 10, "min_lr": 0.0}}
    # no schedule: null; files written before schedules existed (no key) load with none
    model.lr_schedule = None
    assert natverk.load(model.save(tmp_path / "n.npz")).lr_schedule is None
    old = dict(meta)
    del old["lr_schedule"]
    with open(tmp_path / "old.npz", "wb") as f:
        np.savez(f, **{**arrays, "__natverk__": np.array(json.dumps(old))})
    assert natverk.load(tmp_path / "old.npz").lr_schedule is None
    bad = dict(meta, lr_schedule={"class": "Cyclic", "config": {}})
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **{**arrays, "__natverk__": np.array(json.dumps(bad))})
    with pytest.raises(ValueError, match="cannot load model.*unknown schedule class 'Cyclic'"):
        natverk.load(tmp_path / "bad.npz")
