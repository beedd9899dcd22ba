// Component registry: every HA-CM component, which backends implement it, and the tests that
// cover it. Backend-neutral (no Eigen, no torch): the catalogue (names, descriptions, tests,
// declared one-sided exceptions) lives in core/components.cpp; each backend registers what it
// really provides from its own registry.cpp, naming the symbols (the registrations take their
// addresses, so a rename or removal breaks the build instead of leaving the list stale).
// tests/diff_registry.cpp links both backends and fails when a component exists on one side only
// without a declared reason.
#pragma once
#include <string>
#include <vector>

namespace hacm {

enum class Backend { kReference, kAccelerated };
const char* backend_name(Backend b);

// How a backend provides a component.
enum class Provision {
  kFunction,   // a public function of the backend (e.g. hacm::ref::layernorm_forward)
  kInline,     // written inside a larger function of the backend (e.g. a permute in hacm_forward)
  kLibraryOp,  // a LibTorch operator used directly (e.g. at::linear)
};

struct Implementation {
  Backend backend = Backend::kReference;
  Provision provision = Provision::kFunction;
  std::string forward;   // symbol that computes it (for kInline: the enclosing function)
  std::string gradient;  // hand-written backward symbol, "autograd", or "" (not differentiable)
  std::string note;      // one line, e.g. which expression does it inline
};

struct ComponentSpec {
  std::string name;         // snake_case, unique
  std::string family;       // hyperbolic, embedding, transformer, criteria, losses, models, ...
  std::string description;  // one line
  // false: no gradient is needed (the value only feeds an argsort, or the part is frozen / an
  // integer metric / I/O); `why_no_gradient` says which.
  bool differentiable = true;
  std::string why_no_gradient;
  // Covering tests as "<file>.cpp Suite.Name" (checked to exist by tests/diff_registry.cpp).
  std::vector<std::string> tests;
  // A component that legitimately exists in one backend only: that backend and the reason.
  bool one_sided = false;
  Backend only = Backend::kReference;
  std::string one_sided_reason;
};

// The catalogue of components, in table order.
const std::vector<ComponentSpec>& component_catalogue();

class ComponentRegistry {
 public:
  // Records one backend's implementation of a catalogued component. Unknown names and duplicate
  // registrations are kept and reported by problems(), not thrown, so a test can list them all.
  void implement(const std::string& component, Implementation impl);

  std::vector<Implementation> implementations(const std::string& component) const;
  const Implementation* find(const std::string& component, Backend b) const;
  // Every registered symbol of backend b (forward and gradient), template arguments stripped.
  std::vector<std::string> symbols(Backend b) const;

  // Everything that makes the registry inconsistent, one line each, naming the component:
  //  - registered but not in the catalogue, or registered twice by one backend;
  //  - implemented by one backend only without a declared exception (or by neither);
  //  - declared one-sided but implemented by both (stale exception), or by the other side only;
  //  - differentiable but an implementation names no gradient, or vice versa.
  std::vector<std::string> problems() const;
  // Declared one-sided components with their reasons ("name (backend only): reason").
  std::vector<std::string> one_sided() const;
  // Markdown table of the catalogue with both backends' implementations.
  std::string markdown_table() const;

 private:
  struct Entry {
    std::string component;
    Implementation impl;
  };
  std::vector<Entry> entries_;
};

// Drops template arguments: "hacm::ref::linear_forward<double>" -> "hacm::ref::linear_forward".
std::string strip_template_args(const std::string& symbol);

// Defined in reference/registry.cpp and accelerated/registry.cpp (explicit calls, so static
// libraries cannot drop the registrations).
namespace ref {
void register_reference_components(ComponentRegistry& reg);
}
namespace accel {
void register_accelerated_components(ComponentRegistry& reg);
}

}  // namespace hacm
