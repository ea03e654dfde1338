"""pytest setup for scripts/: import the modules by name, 2 torch threads (the CI box has 2 cores)."""
import os
import sys

import torch

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, SCRIPTS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
torch.set_num_threads(2)
