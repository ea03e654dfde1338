#!/usr/bin/env python3
"""Add model.fast.onnx (the fast graph for generation and scoring) to an optimum decoder export. See scripts/fast_graphs.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fast_graphs import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
