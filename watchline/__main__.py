import sys

from watchline.cli import main

sys.exit(main())
