// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
// above U+10FFFF. The one checker of the tree (JSON writers, UCXI answers).
#pragma once

#include <cstddef>
#include <string_view>

namespace bzzz {

// The length (1..4) of the well-formed UTF-8 sequence at s[i], or 0 when
// the bytes there are not one (a stray continuation byte, an overlong
// form, a surrogate, a truncated sequence, ...).
std::size_t Utf8SequenceAt(std::string_view s, std::size_t i);

// Whether every byte of `s` belongs to a well-formed sequence.
bool ValidUtf8(std::string_view s);

}  // namespace bzzz
