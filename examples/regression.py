"""Regression: Friedman's benchmark function #1, y = 10 sin(pi x1 x2) + 20 (x3 - 1/2)^2
+ 10 x4 + 5 x5 + noise, with five more inputs that do not matter. An MLP with squared error
against a linear least-squares fit.

Needs the `sklearn` extra, for scikit-learn's data set generator make_friedman1 (no download):
pip install "fastmlp[sklearn]" (from a source checkout: pip install ".[sklearn]").
"""
import numpy as np

try:
    from sklearn.datasets import make_friedman1
    from sklearn.model_selection import train_test_split
except ImportError:
    raise SystemExit('examples/regression.py needs scikit-learn, the `sklearn` extra: '
                     'pip install "fastmlp[sklearn]" (from a source checkout: '
                     'pip install ".[sklearn]")') from None

from fastmlp import MLP

X, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
mean, std = X_train.mean(axis=0), X_train.std(axis=0)
X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
y_mean, y_std = y_train.mean(), y_train.std()  # train on a standardized target

model = MLP([10, 64, 32, 1], lr=0.003, seed=0, hidden_activation="tanh", l2=1e-3,
            loss="squared_error", optimizer="adam")
model.fit(X_train, (y_train - y_mean) / y_std, epochs=200, batch_size=32, verbose=False)
print(f"MLP test R^2:    {model.score(X_test, (y_test - y_mean) / y_std):.3f}")

A = np.column_stack([X_train, np.ones(len(X_train))])
coef = np.linalg.lstsq(A, y_train, rcond=None)[0]
pred = np.column_stack([X_test, np.ones(len(X_test))]) @ coef
r2 = 1 - np.sum((y_test - pred) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
print(f"linear test R^2: {r2:.3f}")
