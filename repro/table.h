// Result tables: the per-run summary printed by `repro run`, and `repro table [DIR]`, which
// renders every result JSON beside the published numbers of results/published.json as
// Markdown and CSV (each of our cells links to its protocol file).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace hacm::repro {

std::string render_run_summary(const nlohmann::json& result);
// Column key of an evaluation stage: "<dataset>/<split>/<kind>", e.g. "ntu60/xsub/linear".
std::string column_key(const nlohmann::json& protocol_json, size_t stage_index);

}  // namespace hacm::repro
