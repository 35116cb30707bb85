import sys

from bench.scale.cli import main

sys.exit(main())
