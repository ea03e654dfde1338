#!/usr/bin/env python3
"""GPT-J checkpoint -> ONNX model folder. See scripts/export_gptj.py and docs/export.md."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from export_gptj import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
