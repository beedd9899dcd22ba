// Error types shared by every layer. The CLI maps InputError to exit code 2 (bad input or usage)
// and anything else to exit code 1 (internal failure). Messages name the file and line or key.
#pragma once
#include <stdexcept>
#include <string>

namespace hacm {

// Malformed or missing user input: files, protocol JSON, command-line values.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

// Long work stopped on request (a signal); nothing partial was left behind.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(const std::string& what) : std::runtime_error(what) {}
};

// "<file>:<line>: <message>" (line 0 = whole file).
inline InputError input_error(const std::string& file, long line, const std::string& msg) {
  if (line > 0) return InputError(file + ":" + std::to_string(line) + ": " + msg);
  return InputError(file + ": " + msg);
}

}  // namespace hacm
