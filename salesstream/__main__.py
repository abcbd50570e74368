import sys

from salesstream.cli.main import main

sys.exit(main())
