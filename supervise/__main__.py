import sys

from supervise.supervisor import main

sys.exit(main())
