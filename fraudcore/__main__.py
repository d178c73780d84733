import sys

from fraudcore.cli import main

sys.exit(main())
