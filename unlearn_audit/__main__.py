import sys

from unlearn_audit.cli import main

sys.exit(main())
