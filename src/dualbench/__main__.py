import sys

from dualbench.cli import main

sys.exit(main())
