import sys

from mmface4d_datasets.cli import main

sys.exit(main())
