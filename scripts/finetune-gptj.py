#!/usr/bin/env python3
"""Fine-tune a GPT-J on uit distill-data pairs, then export it. See scripts/finetune_gptj.py and docs/distill.md."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from finetune_gptj import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
