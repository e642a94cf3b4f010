// The bzzz binary: every role (node, bootstrap node, client) is a subcommand.
#include "cli/commands.h"

int main(int argc, char** argv) { return bzzz::cli::RunCli(argc, argv); }
