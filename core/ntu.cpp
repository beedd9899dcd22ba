// NTU RGB+D raw .skeleton parser, sample names, missing lists and split lists (see ntu.h).
#include "core/ntu.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace hacm {

// ---- Text scanning ----

std::string read_file_bytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw input_error(path, 0, std::string("cannot open: ") + std::strerror(errno));
  std::string buf;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw input_error(path, 0, "is a directory, expected a file");
  }
  size_t cap = (::fstat(fd, &st) == 0 && st.st_size > 0) ? size_t(st.st_size) : 0;
  buf.resize(cap + 1);  // +1 to see EOF without a second resize for regular files
  size_t n = 0;
  for (;;) {
    if (n == buf.size()) buf.resize(buf.size() * 2 + 4096);
    ssize_t r = ::read(fd, &buf[n], buf.size() - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      throw input_error(path, 0, std::string("read failed: ") + std::strerror(e));
    }
    if (r == 0) break;
    n += size_t(r);
  }
  ::close(fd);
  buf.resize(n);
  return buf;
}

bool LineScanner::next(std::string_view* line) {
  if (p_ >= end_) return false;
  const char* nl = static_cast<const char*>(std::memchr(p_, '\n', size_t(end_ - p_)));
  const char* stop = nl ? nl : end_;
  // A '\r' before the '\n' ends the line too: "\r\n" (CRLF) or a lone "\r" (old Mac).
  const char* cr = static_cast<const char*>(std::memchr(p_, '\r', size_t(stop - p_)));
  ++line_;
  if (cr) {
    *line = std::string_view(p_, size_t(cr - p_));
    p_ = (cr + 1 == nl) ? nl + 1 : cr + 1;
  } else {
    *line = std::string_view(p_, size_t(stop - p_));
    p_ = nl ? nl + 1 : end_;
  }
  return true;
}

namespace {
struct SpaceTable {
  bool t[256] = {};
  SpaceTable() {
    for (unsigned char c : {' ', '\t', '\v', '\f', '\r', '\n'}) t[c] = true;
  }
};
const SpaceTable kSpace;
}  // namespace

static inline bool is_space(char c) {
  return kSpace.t[static_cast<unsigned char>(c)];
}

bool Tokens::next(std::string_view* tok) {
  while (p_ < end_ && is_space(*p_)) ++p_;
  if (p_ >= end_) return false;
  const char* b = p_;
  while (p_ < end_ && !is_space(*p_)) ++p_;
  *tok = std::string_view(b, size_t(p_ - b));
  return true;
}

bool Tokens::empty() {
  while (p_ < end_ && is_space(*p_)) ++p_;
  return p_ >= end_;
}

int Tokens::next_f64(double* v) {
  return next_number(v);
}

int Tokens::next_number(double* v) {
  while (p_ < end_ && is_space(*p_)) ++p_;
  if (p_ >= end_) return 0;
  const char* b = p_;
  // One pass for "[-]ddd.ddd" (<= 15 digits) ending at whitespace or the end of the line.
  const char* q = b;
  bool neg = false;
  if (*q == '-') neg = true, ++q;
  uint64_t m = 0;
  int digits = 0, frac = 0;
  bool dot = false, fast = true;
  for (; q < end_; ++q) {
    unsigned d = unsigned(*q) - unsigned('0');
    if (d <= 9) {
      m = m * 10 + d;
      ++digits;
      frac += dot;
    } else if (*q == '.' && !dot) {
      dot = true;
    } else {
      if (!is_space(*q)) fast = false;
      break;
    }
  }
  if (fast && digits > 0 && digits <= 15 && !v) {  // validation only: no conversion needed
    last_ = std::string_view(b, size_t(q - b));
    p_ = q;
    return 1;
  }
  if (fast && digits > 0 && digits <= 15) {
    static const double kPow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double x = frac ? double(m) / kPow10[frac] : double(m);
    *v = neg ? -x : x;
    last_ = std::string_view(b, size_t(q - b));
    p_ = q;
    return 1;
  }
  while (p_ < end_ && !is_space(*p_)) ++p_;
  last_ = std::string_view(b, size_t(p_ - b));
  double tmp;
  return parse_f64(last_, v ? v : &tmp) ? 1 : -1;
}

int Tokens::count() {
  int n = 0;
  std::string_view t;
  while (next(&t)) ++n;
  return n;
}

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string excerpt(std::string_view s) {
  std::string e(s.substr(0, 40));
  for (char& c : e)
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '?';
  if (s.size() > 40) e += "...";
  return e;
}

// Plain decimals "[-]ddd.ddd" with at most 15 digits: mantissa < 2^53 and 10^frac <= 10^15 are
// exact doubles, and IEEE division rounds their quotient correctly, so the result equals the
// correctly rounded value from_chars/strtod give (Clinger's fast path). Anything else: false.
static bool fast_decimal(const char* b, const char* e, double* v) {
  static const double kPow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  bool neg = false;
  if (b < e && *b == '-') neg = true, ++b;
  uint64_t m = 0;
  int digits = 0, frac = 0;
  bool dot = false;
  for (; b < e; ++b) {
    unsigned d = unsigned(*b) - unsigned('0');
    if (d <= 9) {
      if (++digits > 15) return false;
      m = m * 10 + d;
      frac += dot;
    } else if (*b == '.' && !dot) {
      dot = true;
    } else {
      return false;
    }
  }
  if (digits == 0) return false;
  double x = frac ? double(m) / kPow10[frac] : double(m);
  *v = neg ? -x : x;
  return true;
}

bool parse_f64(std::string_view tok, double* v) {
  const char* b = tok.data();
  const char* e = b + tok.size();
  if (b < e && *b == '+') {
    ++b;
    if (b < e && (*b == '-' || *b == '+')) return false;
  }
  if (b >= e) return false;
  if (fast_decimal(b, e, v)) return true;
  auto r = std::from_chars(b, e, *v, std::chars_format::general);
  if (r.ec == std::errc::result_out_of_range && r.ptr == e && e - b < 512) {
    // Python's float() gives +-inf / +-0 for out-of-range decimals; strtod does the same.
    char tmp[512];
    std::memcpy(tmp, b, size_t(e - b));
    tmp[e - b] = 0;
    *v = std::strtod(tmp, nullptr);
    return true;
  }
  return r.ec == std::errc() && r.ptr == e;
}

bool parse_i64(std::string_view tok, int64_t* v) {
  const char* b = tok.data();
  const char* e = b + tok.size();
  if (b < e && *b == '+') {
    ++b;
    if (b < e && *b == '-') return false;
  }
  if (b >= e) return false;
  auto r = std::from_chars(b, e, *v, 10);
  return r.ec == std::errc() && r.ptr == e;
}

// ---- Sample names ----

static bool field3(std::string_view s, size_t at, char tag, int* v) {
  if (s[at] != tag) return false;
  int x = 0;
  for (size_t i = at + 1; i < at + 4; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    x = x * 10 + (s[i] - '0');
  }
  if (x < 1) return false;
  *v = x;
  return true;
}

bool parse_ntu_name(std::string_view s, NtuSampleName* out) {
  constexpr std::string_view kExt = ".skeleton";
  if (s.size() == 20 + kExt.size() && s.substr(20) == kExt) s = s.substr(0, 20);
  if (s.size() != 20) return false;
  NtuSampleName n;
  if (!field3(s, 0, 'S', &n.setup) || !field3(s, 4, 'C', &n.camera) ||
      !field3(s, 8, 'P', &n.performer) || !field3(s, 12, 'R', &n.replication) ||
      !field3(s, 16, 'A', &n.action))
    return false;
  if (out) *out = n;
  return true;
}

bool is_ntu_name(std::string_view s) {
  return parse_ntu_name(s, nullptr);
}

// ---- Missing-skeleton lists ----

namespace {
// Generated from the official NTU_RGBD120_samples_with_missing_skeletons.txt (535 names; the
// first 302, S001-S017, are the NTU-60 list). Checked against Appendix A of
// datasets-and-protocols.md and the official files by tests/test_ntu.cpp.
const char* const kMissing60 =
    "S001C002P005R002A008 S001C002P006R001A008 S001C003P002R001A055 S001C003P002R002A012 "
    "S001C003P005R002A004 S001C003P005R002A005 S001C003P005R002A006 S001C003P006R002A008 "
    "S002C002P011R002A030 S002C003P008R001A020 S002C003P010R002A010 S002C003P011R002A007 "
    "S002C003P011R002A011 S002C003P014R002A007 S003C001P019R001A055 S003C002P002R002A055 "
    "S003C002P018R002A055 S003C003P002R001A055 S003C003P016R001A055 S003C003P018R002A024 "
    "S004C002P003R001A013 S004C002P008R001A009 S004C002P020R001A003 S004C002P020R001A004 "
    "S004C002P020R001A012 S004C002P020R001A020 S004C002P020R001A021 S004C002P020R001A036 "
    "S005C002P004R001A001 S005C002P004R001A003 S005C002P010R001A016 S005C002P010R001A017 "
    "S005C002P010R001A048 S005C002P010R001A049 S005C002P016R001A009 S005C002P016R001A010 "
    "S005C002P018R001A003 S005C002P018R001A028 S005C002P018R001A029 S005C003P016R002A009 "
    "S005C003P018R002A013 S005C003P021R002A057 S006C001P001R002A055 S006C002P007R001A005 "
    "S006C002P007R001A006 S006C002P016R001A043 S006C002P016R001A051 S006C002P016R001A052 "
    "S006C002P022R001A012 S006C002P023R001A020 S006C002P023R001A021 S006C002P023R001A022 "
    "S006C002P023R001A023 S006C002P024R001A018 S006C002P024R001A019 S006C003P001R002A013 "
    "S006C003P007R002A009 S006C003P007R002A010 S006C003P007R002A025 S006C003P016R001A060 "
    "S006C003P017R001A055 S006C003P017R002A013 S006C003P017R002A014 S006C003P017R002A015 "
    "S006C003P022R002A013 S007C001P018R002A050 S007C001P025R002A051 S007C001P028R001A050 "
    "S007C001P028R001A051 S007C001P028R001A052 S007C002P008R002A008 S007C002P015R002A055 "
    "S007C002P026R001A008 S007C002P026R001A009 S007C002P026R001A010 S007C002P026R001A011 "
    "S007C002P026R001A012 S007C002P026R001A050 S007C002P027R001A011 S007C002P027R001A013 "
    "S007C002P028R002A055 S007C003P007R001A002 S007C003P007R001A004 S007C003P019R001A060 "
    "S007C003P027R002A001 S007C003P027R002A002 S007C003P027R002A003 S007C003P027R002A004 "
    "S007C003P027R002A005 S007C003P027R002A006 S007C003P027R002A007 S007C003P027R002A008 "
    "S007C003P027R002A009 S007C003P027R002A010 S007C003P027R002A011 S007C003P027R002A012 "
    "S007C003P027R002A013 S008C002P001R001A009 S008C002P001R001A010 S008C002P001R001A014 "
    "S008C002P001R001A015 S008C002P001R001A016 S008C002P001R001A018 S008C002P001R001A019 "
    "S008C002P008R002A059 S008C002P025R001A060 S008C002P029R001A004 S008C002P031R001A005 "
    "S008C002P031R001A006 S008C002P032R001A018 S008C002P034R001A018 S008C002P034R001A019 "
    "S008C002P035R001A059 S008C002P035R002A002 S008C002P035R002A005 S008C003P007R001A009 "
    "S008C003P007R001A016 S008C003P007R001A017 S008C003P007R001A018 S008C003P007R001A019 "
    "S008C003P007R001A020 S008C003P007R001A021 S008C003P007R001A022 S008C003P007R001A023 "
    "S008C003P007R001A025 S008C003P007R001A026 S008C003P007R001A028 S008C003P007R001A029 "
    "S008C003P007R002A003 S008C003P008R002A050 S008C003P025R002A002 S008C003P025R002A011 "
    "S008C003P025R002A012 S008C003P025R002A016 S008C003P025R002A020 S008C003P025R002A022 "
    "S008C003P025R002A023 S008C003P025R002A030 S008C003P025R002A031 S008C003P025R002A032 "
    "S008C003P025R002A033 S008C003P025R002A049 S008C003P025R002A060 S008C003P031R001A001 "
    "S008C003P031R002A004 S008C003P031R002A014 S008C003P031R002A015 S008C003P031R002A016 "
    "S008C003P031R002A017 S008C003P032R002A013 S008C003P033R002A001 S008C003P033R002A011 "
    "S008C003P033R002A012 S008C003P034R002A001 S008C003P034R002A012 S008C003P034R002A022 "
    "S008C003P034R002A023 S008C003P034R002A024 S008C003P034R002A044 S008C003P034R002A045 "
    "S008C003P035R002A016 S008C003P035R002A017 S008C003P035R002A018 S008C003P035R002A019 "
    "S008C003P035R002A020 S008C003P035R002A021 S009C002P007R001A001 S009C002P007R001A003 "
    "S009C002P007R001A014 S009C002P008R001A014 S009C002P015R002A050 S009C002P016R001A002 "
    "S009C002P017R001A028 S009C002P017R001A029 S009C003P017R002A030 S009C003P025R002A054 "
    "S010C001P007R002A020 S010C002P016R002A055 S010C002P017R001A005 S010C002P017R001A018 "
    "S010C002P017R001A019 S010C002P019R001A001 S010C002P025R001A012 S010C003P007R002A043 "
    "S010C003P008R002A003 S010C003P016R001A055 S010C003P017R002A055 S011C001P002R001A008 "
    "S011C001P018R002A050 S011C002P008R002A059 S011C002P016R002A055 S011C002P017R001A020 "
    "S011C002P017R001A021 S011C002P018R002A055 S011C002P027R001A009 S011C002P027R001A010 "
    "S011C002P027R001A037 S011C003P001R001A055 S011C003P002R001A055 S011C003P008R002A012 "
    "S011C003P015R001A055 S011C003P016R001A055 S011C003P019R001A055 S011C003P025R001A055 "
    "S011C003P028R002A055 S012C001P019R001A060 S012C001P019R002A060 S012C002P015R001A055 "
    "S012C002P017R002A012 S012C002P025R001A060 S012C003P008R001A057 S012C003P015R001A055 "
    "S012C003P015R002A055 S012C003P016R001A055 S012C003P017R002A055 S012C003P018R001A055 "
    "S012C003P018R001A057 S012C003P019R002A011 S012C003P019R002A012 S012C003P025R001A055 "
    "S012C003P027R001A055 S012C003P027R002A009 S012C003P028R001A035 S012C003P028R002A055 "
    "S013C001P015R001A054 S013C001P017R002A054 S013C001P018R001A016 S013C001P028R001A040 "
    "S013C002P015R001A054 S013C002P017R002A054 S013C002P028R001A040 S013C003P008R002A059 "
    "S013C003P015R001A054 S013C003P017R002A054 S013C003P025R002A022 S013C003P027R001A055 "
    "S013C003P028R001A040 S014C001P027R002A040 S014C002P015R001A003 S014C002P019R001A029 "
    "S014C002P025R002A059 S014C002P027R002A040 S014C002P039R001A050 S014C003P007R002A059 "
    "S014C003P015R002A055 S014C003P019R002A055 S014C003P025R001A048 S014C003P027R002A040 "
    "S015C001P008R002A040 S015C001P016R001A055 S015C001P017R001A055 S015C001P017R002A055 "
    "S015C002P007R001A059 S015C002P008R001A003 S015C002P008R001A004 S015C002P008R002A040 "
    "S015C002P015R001A002 S015C002P016R001A001 S015C002P016R002A055 S015C003P008R002A007 "
    "S015C003P008R002A011 S015C003P008R002A012 S015C003P008R002A028 S015C003P008R002A040 "
    "S015C003P025R002A012 S015C003P025R002A017 S015C003P025R002A020 S015C003P025R002A021 "
    "S015C003P025R002A030 S015C003P025R002A033 S015C003P025R002A034 S015C003P025R002A036 "
    "S015C003P025R002A037 S015C003P025R002A044 S016C001P019R002A040 S016C001P025R001A011 "
    "S016C001P025R001A012 S016C001P025R001A060 S016C001P040R001A055 S016C001P040R002A055 "
    "S016C002P008R001A011 S016C002P019R002A040 S016C002P025R002A012 S016C003P008R001A011 "
    "S016C003P008R002A002 S016C003P008R002A003 S016C003P008R002A004 S016C003P008R002A006 "
    "S016C003P008R002A009 S016C003P019R002A040 S016C003P039R002A016 S017C001P016R002A031 "
    "S017C002P007R001A013 S017C002P008R001A009 S017C002P015R001A042 S017C002P016R002A031 "
    "S017C002P016R002A055 S017C003P007R002A013 S017C003P008R001A059 S017C003P016R002A031 "
    "S017C003P017R001A055 S017C003P020R001A059 ";
const char* const kMissing120Extra =
    "S019C001P046R001A075 S019C002P042R001A094 S019C002P042R001A095 S019C002P042R001A096 "
    "S019C002P042R001A097 S019C002P042R001A098 S019C002P042R001A099 S019C002P042R001A100 "
    "S019C002P042R001A101 S019C002P042R001A102 S019C002P049R002A074 S019C002P049R002A079 "
    "S019C002P051R001A061 S019C003P046R001A061 S019C003P046R002A061 S019C003P046R002A062 "
    "S020C002P041R001A063 S020C002P041R001A064 S020C002P044R001A063 S020C002P044R001A064 "
    "S020C002P044R001A066 S020C002P044R001A084 S020C002P054R001A081 S021C001P059R001A108 "
    "S021C002P055R001A065 S021C002P055R001A092 S021C002P055R001A093 S021C002P057R001A064 "
    "S021C002P058R001A063 S021C002P058R001A064 S021C002P059R001A074 S021C002P059R001A075 "
    "S021C002P059R001A076 S021C002P059R001A077 S021C002P059R001A078 S021C002P059R001A079 "
    "S021C003P057R002A078 S021C003P057R002A079 S021C003P057R002A094 S022C002P061R001A113 "
    "S022C003P061R002A061 S022C003P061R002A062 S022C003P063R002A061 S022C003P063R002A062 "
    "S022C003P063R002A063 S022C003P063R002A064 S022C003P063R002A078 S022C003P064R002A061 "
    "S022C003P064R002A062 S022C003P065R002A061 S022C003P065R002A062 S022C003P065R002A119 "
    "S022C003P067R002A064 S023C002P055R001A114 S023C002P055R002A092 S023C002P059R001A075 "
    "S023C002P063R001A075 S023C003P055R002A093 S023C003P055R002A094 S023C003P061R002A061 "
    "S023C003P064R001A092 S024C001P063R001A109 S024C002P062R002A074 S024C002P067R001A100 "
    "S024C002P067R001A101 S024C002P067R001A102 S024C002P067R001A103 S024C003P062R002A074 "
    "S024C003P063R002A061 S024C003P063R002A062 S025C001P055R002A119 S025C003P056R002A119 "
    "S025C003P059R002A115 S026C002P044R001A061 S026C002P044R001A062 S026C002P070R001A092 "
    "S026C003P069R002A075 S026C003P074R002A061 S026C003P074R002A062 S026C003P075R001A117 "
    "S026C003P075R001A118 S027C001P082R001A063 S027C002P044R002A092 S027C002P079R001A061 "
    "S027C002P079R001A062 S027C002P079R001A063 S027C002P079R001A064 S027C002P082R001A092 "
    "S027C002P084R001A061 S027C002P084R001A062 S027C002P086R001A061 S027C003P041R002A087 "
    "S027C003P080R002A061 S027C003P082R002A061 S027C003P082R002A062 S027C003P086R002A061 "
    "S027C003P086R002A062 S028C001P087R001A061 S028C002P041R001A091 S028C002P087R001A061 "
    "S028C003P042R002A064 S028C003P046R002A063 S028C003P046R002A066 S028C003P046R002A067 "
    "S028C003P046R002A068 S028C003P046R002A069 S028C003P046R002A070 S028C003P046R002A071 "
    "S028C003P046R002A072 S028C003P046R002A074 S028C003P046R002A075 S028C003P046R002A077 "
    "S028C003P046R002A081 S028C003P046R002A082 S028C003P046R002A083 S028C003P046R002A084 "
    "S028C003P048R002A061 S028C003P048R002A062 S028C003P048R002A073 S028C003P073R002A073 "
    "S028C003P087R001A061 S028C003P087R002A061 S028C003P087R002A062 S029C001P043R002A092 "
    "S029C001P044R002A092 S029C001P048R001A073 S029C001P089R001A063 S029C002P041R001A074 "
    "S029C002P041R001A084 S029C002P044R001A091 S029C002P048R001A075 S029C002P048R001A081 "
    "S029C002P074R001A081 S029C002P074R001A095 S029C002P074R001A096 S029C002P080R001A091 "
    "S029C002P088R001A066 S029C002P089R001A065 S029C002P090R001A067 S029C003P008R002A065 "
    "S029C003P008R002A067 S029C003P041R001A089 S029C003P043R001A080 S029C003P043R001A092 "
    "S029C003P043R001A105 S029C003P043R002A085 S029C003P043R002A086 S029C003P044R002A106 "
    "S029C003P048R001A065 S029C003P048R002A073 S029C003P048R002A074 S029C003P048R002A075 "
    "S029C003P048R002A076 S029C003P048R002A092 S029C003P048R002A094 S029C003P051R002A073 "
    "S029C003P051R002A074 S029C003P051R002A075 S029C003P051R002A076 S029C003P051R002A077 "
    "S029C003P051R002A078 S029C003P051R002A079 S029C003P051R002A080 S029C003P051R002A081 "
    "S029C003P051R002A082 S029C003P051R002A083 S029C003P051R002A084 S029C003P051R002A085 "
    "S029C003P051R002A086 S029C003P051R002A110 S029C003P067R001A098 S029C003P074R002A110 "
    "S029C003P080R002A066 S029C003P088R002A078 S029C003P089R001A075 S029C003P089R002A061 "
    "S029C003P089R002A062 S029C003P089R002A063 S029C003P090R002A092 S029C003P090R002A095 "
    "S030C002P091R002A091 S030C002P091R002A092 S030C002P091R002A093 S030C002P091R002A094 "
    "S030C002P091R002A095 S030C002P091R002A096 S030C002P091R002A097 S030C002P091R002A098 "
    "S030C002P091R002A099 S030C002P091R002A100 S030C002P091R002A101 S030C002P091R002A102 "
    "S030C002P091R002A103 S030C002P091R002A104 S030C002P091R002A105 S030C003P044R002A065 "
    "S030C003P044R002A081 S030C003P044R002A084 S031C002P042R001A111 S031C002P051R001A061 "
    "S031C002P051R001A062 S031C002P067R001A067 S031C002P067R001A068 S031C002P067R001A069 "
    "S031C002P067R001A070 S031C002P067R001A071 S031C002P067R001A072 S031C002P082R001A075 "
    "S031C002P082R002A117 S031C002P097R001A061 S031C002P097R001A062 S031C003P043R002A074 "
    "S031C003P043R002A075 S031C003P044R002A094 S031C003P082R002A067 S031C003P082R002A068 "
    "S031C003P082R002A069 S031C003P082R002A070 S031C003P082R002A071 S031C003P082R002A072 "
    "S031C003P082R002A073 S031C003P082R002A075 S031C003P082R002A076 S031C003P082R002A077 "
    "S031C003P082R002A084 S031C003P082R002A085 S031C003P082R002A086 S032C002P067R001A092 "
    "S032C003P067R002A066 S032C003P067R002A067 S032C003P067R002A075 S032C003P067R002A076 "
    "S032C003P067R002A077 ";

std::vector<std::string> split_names(const char* s) {
  std::vector<std::string> v;
  Tokens t{std::string_view(s)};
  std::string_view tok;
  while (t.next(&tok)) v.emplace_back(tok);
  return v;
}
}  // namespace

const std::vector<std::string>& ntu_missing_samples(bool ntu120) {
  static const std::vector<std::string> k60 = split_names(kMissing60);
  static const std::vector<std::string> k120 = [] {
    std::vector<std::string> v = split_names(kMissing60);
    for (auto& n : split_names(kMissing120Extra)) v.push_back(n);
    return v;
  }();
  return ntu120 ? k120 : k60;
}

std::vector<std::string> parse_ntu_missing_list(const char* data, size_t size) {
  std::vector<std::string> names;
  LineScanner sc(data, size);
  std::string_view line;
  while (sc.next(&line)) {
    std::string_view t = trim(line);
    if (t.size() == 20 && is_ntu_name(t)) names.emplace_back(t);
  }
  return names;
}

std::vector<std::string> read_ntu_missing_list(const std::string& path) {
  std::string buf = read_file_bytes(path);
  return parse_ntu_missing_list(buf.data(), buf.size());
}

// ---- Splits ----

std::vector<NtuSplit> ntu_splits(bool ntu120) {
  std::vector<NtuSplit> s;
  if (!ntu120) {
    std::vector<int> train = {1,  2,  4,  5,  8,  9,  13, 14, 15, 16,
                              17, 18, 19, 25, 27, 28, 31, 34, 35, 38};
    std::vector<int> test = {3,  6,  7,  10, 11, 12, 20, 21, 22, 23,
                             24, 26, 29, 30, 32, 33, 36, 37, 39, 40};
    s.push_back({"XSub", NtuSplitKey::performer, train, test});
    s.push_back({"XView", NtuSplitKey::camera, {2, 3}, {1}});
  } else {
    std::vector<int> train = {1,  2,  4,  5,  8,  9,  13, 14, 15, 16,  17, 18, 19, 25,
                              27, 28, 31, 34, 35, 38, 45, 46, 47, 49,  50, 52, 53, 54,
                              55, 56, 57, 58, 59, 70, 74, 78, 80, 81,  82, 83, 84, 85,
                              86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103};
    std::vector<int> test;
    for (int i = 1; i <= 106; ++i) {
      bool in = false;
      for (int t : train) in |= t == i;
      if (!in) test.push_back(i);
    }
    s.push_back({"XSub", NtuSplitKey::performer, train, test});
    std::vector<int> even, odd;
    for (int i = 1; i <= 32; ++i) (i % 2 == 0 ? even : odd).push_back(i);
    s.push_back({"XSet", NtuSplitKey::setup, even, odd});
  }
  return s;
}

int ntu_split_value(const NtuSampleName& n, NtuSplitKey key) {
  switch (key) {
    case NtuSplitKey::performer:
      return n.performer;
    case NtuSplitKey::camera:
      return n.camera;
    case NtuSplitKey::setup:
      return n.setup;
  }
  return 0;
}

void ntu_split_indices(const NtuSplit& split, const std::vector<NtuSampleName>& samples,
                       std::vector<int64_t>* train, std::vector<int64_t>* test) {
  // Bucket by id once (ids are small), then concatenate buckets in list order.
  int max_id = 0;
  for (const auto& n : samples) max_id = std::max(max_id, ntu_split_value(n, split.key));
  std::vector<std::vector<int64_t>> by_id(size_t(max_id) + 1);
  for (size_t i = 0; i < samples.size(); ++i)
    by_id[size_t(ntu_split_value(samples[i], split.key))].push_back(int64_t(i));
  auto gather = [&](const std::vector<int>& ids, std::vector<int64_t>* out) {
    out->clear();
    for (int id : ids)
      if (id >= 0 && id <= max_id)
        out->insert(out->end(), by_id[size_t(id)].begin(), by_id[size_t(id)].end());
  };
  gather(split.train_ids, train);
  gather(split.test_ids, test);
}

// ---- .skeleton parsing ----

namespace {

struct SkeletonParser {
  LineScanner sc;
  const std::string& where;
  std::string_view line;

  SkeletonParser(const char* d, size_t n, const std::string& w) : sc(d, n), where(w) {}

  [[noreturn]] void fail(long line_no, const std::string& msg) {
    throw input_error(where, line_no, msg);
  }

  void need(const char* what) {
    if (!sc.next(&line))
      fail(sc.line_no() + 1, std::string("unexpected end of file (truncated?): expected ") + what);
  }

  // A line holding one integer (Python int() of the stripped line).
  int64_t int_line(const char* what) {
    need(what);
    Tokens t(line);
    std::string_view tok;
    int64_t v = 0;
    if (!t.next(&tok) || !parse_i64(tok, &v) || !t.empty())
      fail(sc.line_no(),
           std::string("expected ") + what + " (an integer), found '" + excerpt(line) + "'");
    return v;
  }
};

}  // namespace

NtuSkeleton parse_ntu_skeleton(const char* data, size_t size, const std::string& where) {
  SkeletonParser ps(data, size, where);
  NtuSkeleton sk;
  int64_t nf = ps.int_line("the frame count");
  if (nf < 0 || nf > INT_MAX)
    ps.fail(ps.sc.line_no(), "frame count " + std::to_string(nf) + " out of range");
  sk.file_frames = int(nf);
  // Never trust the count for allocation: a frame needs at least 2 bytes.
  sk.bodies_per_frame.reserve(size_t(std::min<int64_t>(nf, int64_t(size / 2) + 1)));
  std::vector<int> in_frame;  // body indices seen in the current frame
  for (int f = 0; f < sk.file_frames; ++f) {
    int64_t nb = ps.int_line("a body count");
    if (nb < 0 || nb > INT_MAX)
      ps.fail(ps.sc.line_no(), "body count " + std::to_string(nb) + " out of range");
    sk.bodies_per_frame.push_back(int(nb));
    if (nb == 0) continue;  // the original drops frames without bodies
    int kept = sk.kept_frames++;
    in_frame.clear();
    for (int64_t b = 0; b < nb; ++b) {
      ps.need("a body-info line");
      std::string_view id;
      if (!Tokens(ps.line).next(&id))
        ps.fail(ps.sc.line_no(), "empty body-info line (expected a bodyID)");
      long id_line = ps.sc.line_no();
      int64_t nj = ps.int_line("the joint count");
      if (nj != kNtuJoints)
        ps.fail(ps.sc.line_no(), "joint count " + std::to_string(nj) + ", expected 25");
      int bi = -1;
      for (size_t k = 0; k < sk.bodies.size(); ++k)
        if (sk.bodies[k].id == id) {
          bi = int(k);
          break;
        }
      if (bi < 0) {
        bi = int(sk.bodies.size());
        NtuBody nbody;
        nbody.id = std::string(id);
        nbody.first = kept;
        sk.bodies.push_back(std::move(nbody));
      } else {
        for (int seen : in_frame)
          if (seen == bi) ps.fail(id_line, "bodyID " + excerpt(id) + " appears twice in one frame");
      }
      in_frame.push_back(bi);
      NtuBody& body = sk.bodies[size_t(bi)];
      size_t base = body.xyz.size();
      body.xyz.resize(base + kNtuJoints * 3);
      float* out = body.xyz.data() + base;
      for (int j = 0; j < kNtuJoints; ++j) {
        ps.need("a joint line");
        Tokens t(ps.line);
        std::string_view tok;
        // Fields: x y z depthX depthY colorX colorY ...; the original converts x,y,z (to
        // float32 through a Python float) and colorX, colorY, so those must be numbers.
        for (int k = 0; k < 7; ++k) {
          int r = 1;
          double v = 0;
          if (k < 3 || k >= 5)
            r = t.next_number(k < 3 ? &v : nullptr);  // colorX/Y: checked, not converted
          else
            r = t.next(&tok) ? 1 : 0;
          if (r == 0)
            ps.fail(ps.sc.line_no(),
                    "joint line has " + std::to_string(k) + " fields, expected 12");
          if (r < 0)
            ps.fail(ps.sc.line_no(),
                    "non-numeric value '" + excerpt(t.last()) + "' in a joint line");
          if (k < 3) out[j * 3 + k] = float(v);
        }
      }
      body.count++;
    }
  }
  return sk;
}

NtuSkeleton read_ntu_skeleton(const std::string& path) {
  std::string buf = read_file_bytes(path);
  return parse_ntu_skeleton(buf.data(), buf.size(), path);
}

}  // namespace hacm
