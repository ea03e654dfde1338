#!/usr/bin/env python3
"""Quantize an exported model folder's linear layers to int4 or int8 weights. See scripts/quantize_model.py and docs/export.md."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from quantize_model import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
