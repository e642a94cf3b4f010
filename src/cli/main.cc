// The bzzz binary: every role (node, bootstrap node, client) is a subcommand.
#include "cli/commands.h"
#include "node/logging.h"

int main(int argc, char** argv) {
  const int code = bzzz::cli::RunCli(argc, argv);
  bzzz::node::StopLogging();  // before static destruction: joins the log writer
  return code;
}
