"""The command line: one thin module per subcommand. Only this package prints or exits."""
