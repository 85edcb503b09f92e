"""Test-only stand-ins: a toy model, loss and data for the training engine (toy), a character tokenizer for the
data path (char_tokenizer). tests/conftest.py puts tests/ on sys.path so that tests import them as `helpers.*`."""
