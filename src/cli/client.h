// The CLI reaches a running node with the shared HTTP client (http/client.h).
#pragma once

#include "http/client.h"

namespace bzzz::cli {

using http::Call;
using http::ClientOptions;
using http::ClientResponse;

}  // namespace bzzz::cli
