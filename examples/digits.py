"""Handwritten digits, 10 classes: softmax output, Adam, a cosine schedule, early stopping.

Needs the `sklearn` extra, for scikit-learn's bundled digits data set (1797 images of 8x8 pixels,
no download): pip install "fastmlp[sklearn]" (from a source checkout: pip install ".[sklearn]").
"""
try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
except ImportError:
    raise SystemExit('examples/digits.py needs scikit-learn, the `sklearn` extra: '
                     'pip install "fastmlp[sklearn]" (from a source checkout: '
                     'pip install ".[sklearn]")') from None

from fastmlp import MLP
from fastmlp.schedules import Cosine

X, y = load_digits(return_X_y=True)
X = X / 16.0                                   # pixels 0..16 -> 0..1
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)

epochs = 60
model = MLP([64, 128, 64, 10], lr=0.003, seed=0, optimizer="adam", dropout=0.1,
            schedule=Cosine(total_epochs=epochs), early_stopping=True, patience=10)
model.fit(X_train, y_train, epochs=epochs, batch_size=64, verbose=False)

print(f"trained {len(model.history['loss'])} of {epochs} epochs (early stopping on a "
      f"validation tenth), final rate {model.lr:.2e}")
print(f"test accuracy: {model.score(X_test, y_test):.3f}")
