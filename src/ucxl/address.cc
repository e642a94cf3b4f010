#include "ucxl/address.h"

#include <algorithm>
#include <cstdio>

#include "ucxl/errc.h"

namespace bzzz::ucxl {

namespace {

bool NameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
bool PathChar(char c) { return NameChar(c) || c == '.' || c == '/'; }
bool Hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
// RFC 3986 pchar / "/" / "?" without pct-encoded (checked separately).
bool QueryChar(char c) {
  if (NameChar(c)) return true;
  switch (c) {
    case '.':
    case '~':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '@':
    case '/':
    case '?':
      return true;
    default:
      return false;
  }
}
bool Digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

struct Failure {
  std::string field;
  std::string reason;
};

std::optional<Failure> ParseName(std::string_view field, std::string_view text, std::string* out) {
  if (text.empty()) return Failure{std::string(field), "empty (a name, or any)"};
  if (text == "*" || text == kAny) {
    *out = std::string(kAny);
    return std::nullopt;
  }
  if (text.size() > kMaxNameBytes) return Failure{std::string(field), "longer than 128 characters"};
  for (char c : text) {
    if (!NameChar(c)) {
      return Failure{std::string(field), "may hold only letters, digits, '_' and '-', or be any (found '" +
                                             std::string(1, c) + "')"};
    }
  }
  *out = std::string(text);
  return std::nullopt;
}

std::optional<Failure> ParseCount(std::string_view digits, std::uint64_t* out) {
  if (!Digits(digits)) return Failure{"temporal", "expected a number after the operator"};
  if (digits.size() > 18) return Failure{"temporal", "number too large"};
  std::uint64_t v = 0;
  for (char c : digits) v = v * 10 + static_cast<std::uint64_t>(c - '0');
  *out = v;
  return std::nullopt;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void CivilFromDays(std::int64_t z, std::int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<std::int64_t>(yoe) + era * 400 + (*m <= 2);
}

unsigned DaysInMonth(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

unsigned Num(std::string_view s) {
  unsigned v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
  return v;
}

// YYYY-MM-DDTHH:MM:SS[.fraction]Z
std::optional<Failure> ParseInstant(std::string_view s, Temporal* out) {
  const Failure bad{"temporal",
                    "not *^, *~, *~N, ~~N, ^^N or an ISO-8601 UTC instant (YYYY-MM-DDTHH:MM:SS[.fff]Z)"};
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return bad;
  if (s.back() != 'Z') return Failure{"temporal", "the instant must be UTC, ending in Z"};
  const std::string_view year = s.substr(0, 4), month = s.substr(5, 2), day = s.substr(8, 2),
                         hour = s.substr(11, 2), minute = s.substr(14, 2), second = s.substr(17, 2);
  for (auto part : {year, month, day, hour, minute, second}) {
    if (!Digits(part)) return bad;
  }
  std::uint32_t nanos = 0;
  const std::string_view rest = s.substr(19, s.size() - 20);
  if (!rest.empty()) {
    if (rest[0] != '.' || rest.size() < 2 || rest.size() > 10 || !Digits(rest.substr(1))) {
      return Failure{"temporal", "the fraction of a second must be 1 to 9 digits after '.'"};
    }
    std::string digits(rest.substr(1));
    digits.resize(9, '0');
    nanos = Num(digits);
  }
  const std::int64_t y = Num(year);
  const unsigned mo = Num(month), d = Num(day), h = Num(hour), mi = Num(minute), se = Num(second);
  if (y < 1) return Failure{"temporal", "year must be 0001 or later"};
  if (mo < 1 || mo > 12) return Failure{"temporal", "month must be 01 to 12"};
  if (d < 1 || d > DaysInMonth(y, mo)) return Failure{"temporal", "no such day in that month"};
  if (h > 23 || mi > 59 || se > 59) return Failure{"temporal", "time of day out of range"};
  out->kind = TemporalKind::kInstant;
  out->seconds = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  out->nanos = nanos;
  return std::nullopt;
}

std::optional<Failure> ParseTemporal(std::string_view s, Temporal* out) {
  *out = Temporal{};
  if (s.empty()) return Failure{"temporal", "empty (use *^ for the latest version)"};
  if (s == "*^") return std::nullopt;
  if (s == "*~") {
    out->kind = TemporalKind::kFirst;
    return std::nullopt;
  }
  if (s.substr(0, 2) == "*~") {
    out->kind = TemporalKind::kVersion;
    if (auto f = ParseCount(s.substr(2), &out->n)) return f;
    if (out->n == 0) return Failure{"temporal", "versions are numbered from 1 (*~1 is the first)"};
    return std::nullopt;
  }
  if (s.substr(0, 2) == "~~" || s.substr(0, 2) == "^^") {
    out->kind = s[0] == '~' ? TemporalKind::kBack : TemporalKind::kForward;
    if (s.size() == 2) {
      out->n = 1;
      return std::nullopt;
    }
    return ParseCount(s.substr(2), &out->n);
  }
  if (!s.empty() && s[0] >= '0' && s[0] <= '9') return ParseInstant(s, out);
  return Failure{"temporal", "not *^, *~, *~N, ~~N, ^^N or an ISO-8601 UTC instant"};
}

std::optional<Failure> CheckPercent(std::string_view field, std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !Hex(s[i + 1]) || !Hex(s[i + 2])) {
        return Failure{std::string(field), "'%' must start an escape of two hex digits"};
      }
      i += 2;
      continue;
    }
    if (!QueryChar(c)) {
      return Failure{std::string(field), "character not allowed (escape it as %XX): code " +
                                             std::to_string(static_cast<unsigned char>(c))};
    }
  }
  return std::nullopt;
}

std::optional<Failure> ParseAll(std::string_view text, Address* a) {
  if (text.size() > kMaxAddressBytes) return Failure{"address", "longer than 2048 bytes"};
  if (text.substr(0, kScheme.size()) != kScheme) return Failure{"scheme", "must start with ucxl://"};
  std::string_view rest = text.substr(kScheme.size());

  // Fragment, then query, come off the end first.
  if (auto hash = rest.find('#'); hash != std::string_view::npos) {
    const std::string_view fragment = rest.substr(hash + 1);
    if (auto f = CheckPercent("fragment", fragment)) return f;
    a->fragment = std::string(fragment);
    rest = rest.substr(0, hash);
  }
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    const std::string_view query = rest.substr(q + 1);
    if (auto f = CheckPercent("query", query)) return f;
    a->query = std::string(query);
    rest = rest.substr(0, q);
  }

  const auto slash = rest.find('/');
  if (slash == std::string_view::npos)
    return Failure{"temporal", "missing: the address needs /<temporal>/ after the task"};
  const std::string_view authority = rest.substr(0, slash);
  const auto at = authority.find('@');
  if (at == std::string_view::npos)
    return Failure{"address", "missing '@' between <agent>:<role> and <project>:<task>"};
  const std::string_view who = authority.substr(0, at), what = authority.substr(at + 1);
  const auto c1 = who.find(':'), c2 = what.find(':');
  if (c1 == std::string_view::npos) return Failure{"role", "missing: expected <agent>:<role>"};
  if (c2 == std::string_view::npos) return Failure{"task", "missing: expected <project>:<task>"};
  if (auto f = ParseName("agent", who.substr(0, c1), &a->agent)) return f;
  if (auto f = ParseName("role", who.substr(c1 + 1), &a->role)) return f;
  if (auto f = ParseName("project", what.substr(0, c2), &a->project)) return f;
  if (auto f = ParseName("task", what.substr(c2 + 1), &a->task)) return f;

  std::string_view after = rest.substr(slash + 1);
  const auto slash2 = after.find('/');
  const std::string_view temporal = after.substr(0, slash2);
  if (auto f = ParseTemporal(temporal, &a->temporal)) return f;
  const std::string_view path =
      slash2 == std::string_view::npos ? std::string_view() : after.substr(slash2 + 1);
  for (char c : path) {
    if (!PathChar(c)) {
      return Failure{"path", "may hold only letters, digits, '_', '-', '.' and '/' (found code " +
                                 std::to_string(static_cast<unsigned char>(c)) + ")"};
    }
  }
  if (!path.empty() && path[0] == '/') return Failure{"path", "must not start with '/'"};
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find('/', start), path.size());
    if (path.substr(start, end - start) == "..") return Failure{"path", "'..' segments are not allowed"};
    start = end + 1;
  }
  a->path = std::string(path);
  return std::nullopt;
}

}  // namespace

bool Address::HasWildcard() const { return agent == kAny || role == kAny || project == kAny || task == kAny; }

Result<Address> Parse(std::string_view text, AddressError* error) {
  Address a;
  if (auto f = ParseAll(text, &a)) {
    if (error) *error = AddressError{f->field, f->reason};
    return Error(Errc::kInvalidAddress, "invalid UCXL address: " + f->field + ": " + f->reason);
  }
  return a;
}

std::string FormatTemporal(const Temporal& t) {
  switch (t.kind) {
    case TemporalKind::kLatest:
      return "*^";
    case TemporalKind::kFirst:
      return "*~";
    case TemporalKind::kVersion:
      return "*~" + std::to_string(t.n);
    case TemporalKind::kBack:
      return "~~" + std::to_string(t.n);
    case TemporalKind::kForward:
      return "^^" + std::to_string(t.n);
    case TemporalKind::kInstant: {
      std::int64_t days = t.seconds / 86400, secs = t.seconds % 86400;
      if (secs < 0) {
        secs += 86400;
        --days;
      }
      std::int64_t y;
      unsigned m, d;
      CivilFromDays(days, &y, &m, &d);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld", static_cast<long long>(y), m, d,
                    static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                    static_cast<long long>(secs % 60));
      std::string out = buf;
      if (t.nanos != 0) {
        char frac[16];
        std::snprintf(frac, sizeof frac, ".%09u", t.nanos);
        std::string f = frac;
        while (f.back() == '0') f.pop_back();
        out += f;
      }
      return out + "Z";
    }
  }
  return "*^";
}

std::string Format(const Address& a) {
  std::string out = std::string(kScheme) + a.agent + ":" + a.role + "@" + a.project + ":" + a.task + "/" +
                    FormatTemporal(a.temporal);
  if (!a.path.empty()) out += "/" + a.path;
  if (a.query) out += "?" + *a.query;
  if (a.fragment) out += "#" + *a.fragment;
  return out;
}

std::string ContentKey(const Address& a) {
  return std::string(kScheme) + a.agent + ":" + a.role + "@" + a.project + ":" + a.task + "/" + a.path;
}

Result<Address> AddressOfContentKey(std::string_view key) {
  const auto slash = key.find('/', kScheme.size());
  if (key.substr(0, kScheme.size()) != kScheme || slash == std::string_view::npos) {
    return InvalidArgument("not a UCXL content key: " + std::string(key.substr(0, 100)));
  }
  return Parse(std::string(key.substr(0, slash)) + "/*^" + std::string(key.substr(slash)));
}

Result<std::size_t> Resolve(const Temporal& t, const std::vector<VersionRef>& history) {
  if (history.empty()) return NotFound("no versions");
  const std::size_t n = history.size();
  auto out_of_range = [&](const std::string& what) {
    return Error(Errc::kTemporalInvalid, "temporal out of range: " + what + " (" + std::to_string(n) + " version(s))");
  };
  switch (t.kind) {
    case TemporalKind::kLatest:
      return n - 1;
    case TemporalKind::kFirst:
      return std::size_t{0};
    case TemporalKind::kVersion:
      for (std::size_t i = 0; i < n; ++i) {
        if (history[i].number == t.n) return i;
      }
      return out_of_range("no version " + std::to_string(t.n));
    case TemporalKind::kBack:
      if (t.n >= n) return out_of_range(std::to_string(t.n) + " back from the latest");
      return n - 1 - static_cast<std::size_t>(t.n);
    case TemporalKind::kForward:
      if (t.n >= n) return out_of_range(std::to_string(t.n) + " forward from the first");
      return static_cast<std::size_t>(t.n);
    case TemporalKind::kInstant: {
      const std::int64_t at_ms = t.seconds * 1000 + t.nanos / 1000000;
      std::optional<std::size_t> found;
      for (std::size_t i = 0; i < n; ++i) {
        if (history[i].created_ms <= at_ms) found = i;
      }
      if (!found) return out_of_range("the instant is before the first version");
      return *found;
    }
  }
  return Internal("unknown temporal kind");
}

bool Matches(const Address& pattern, const Address& a) {
  auto name = [](const std::string& p, const std::string& v) { return p == kAny || p == v; };
  if (!name(pattern.agent, a.agent) || !name(pattern.role, a.role) || !name(pattern.project, a.project) ||
      !name(pattern.task, a.task)) {
    return false;
  }
  if (pattern.path.empty() || pattern.path == a.path) return true;
  std::string prefix = pattern.path;
  if (prefix.back() != '/') prefix += '/';
  return a.path.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace bzzz::ucxl
