"""The ``keras-ebm`` command line: one module per subcommand, each with its ``main()``."""
