"""python -m cloudedge.pretrained add PATH --command CMD (see __init__.py)."""
import sys

from . import main

sys.exit(main())
