import sys

from batchsubmit.cli import main

sys.exit(main())
