"""The release pipeline's library, outside the product package: what only the training of the shipped weights
uses. ``scripts/train_weights.py`` (train, campaigns, install into ``resources/models``) drives it.

- :mod:`release.cards`: the shipped models' cards (summary for photographers, test tables, every round).
- :mod:`release.validation`: the fixed validation split of the training photos that selects and installs.

Not part of the wheel or the app bundle; ``mlrn train`` and the wizard do not use it.
"""
