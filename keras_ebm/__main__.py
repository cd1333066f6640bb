"""``python -m keras_ebm COMMAND``: the ``keras-ebm`` command."""

import sys

from keras_ebm.cli.main import main

sys.exit(main())
