// Files the node keeps in its data directory, written so that a crash or a
// power loss leaves either the old content or the new, never a mix.
#pragma once

#include <string>
#include <string_view>
#include <sys/types.h>

#include "base/status.h"

namespace bzzz {

// Replaces `path` with `data`: writes `path`.tmp (created with `mode`,
// close-on-exec), fsyncs it, renames it over `path` and fsyncs the
// directory, so the new content is durable once this returns Ok. Creates
// the parent directory when missing. On failure `path` is unchanged and
// the temporary file is removed; Unavailable names the step that failed.
// With `durable` false (caches, which may be lost) the two fsyncs are
// skipped: still all-or-nothing after a crash of the process, not after a
// power loss.
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0600, bool durable = true);

}  // namespace bzzz
