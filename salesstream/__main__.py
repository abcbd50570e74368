import sys

from salesstream.cli import main

sys.exit(main())
