#include "repro/table.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "core/error.h"
#include "repro/commands.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace hacm::repro {

static std::string f2(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

// ", bf16" / ", tf32" for results not computed in plain float32 (older results have no key).
static std::string precision_note(const json& r) {
  const std::string p = r.value("precision", std::string("fp32"));
  return p == "fp32" ? "" : ", " + p;
}

std::string render_run_summary(const json& r) {
  std::ostringstream os;
  // The GPU's name where the result records it (device_name, since the eighth session).
  const std::string device =
      r.value("device", "?") == "cuda" ? r.value("device_name", "cuda") : r.value("device", "?");
  os << "\n## " << r.value("protocol", "?") << " (" << r.value("backend", "?") << ", " << device
     << ", " << r.value("precision", std::string("fp32"))
     << (r.value("cuda_graphs", false) ? ", CUDA graphs" : "")
     << (r.value("device", "") == "cuda" && !r.value("custom_kernels", true) ? ", ATen ops only"
                                                                             : "")
     << ", commit " << r.value("git_commit", "?") << ")\n\n";
  os << "| seed | stage | kind | top-1 final | top-1 max (test-set best epoch) | top-5 final | "
        "wall |\n";
  os << "|---|---|---|---|---|---|---|\n";
  for (const auto& run : r["runs"]) {
    size_t i = 0;
    for (const auto& s : run["stages"]) {
      auto row = [&](const json& st, const std::string& kind) {
        os << "| " << run["seed"].get<uint64_t>() << " | " << i << " | " << kind << " | ";
        if (st.contains("top1_final"))
          os << f2(st["top1_final"]) << " % | " << f2(st["top1_max"]) << " % | "
             << f2(st["top5_final"]) << " % | ";
        else
          os << "loss "
             << (st.contains("final_loss") && !st["final_loss"].is_null() ? f2(st["final_loss"])
                                                                          : "-")
             << " | | | ";
        os << f2(st.value("wall_s", 0.0)) << " s |\n";
      };
      row(s, s.value("kind", "?"));
      if (s.contains("linear_random")) row(s["linear_random"], "linear (random-init encoder)");
      ++i;
    }
  }
  return os.str();
}

std::string column_key(const json& pj, size_t i) {
  const json& st = pj["stages"][i];
  const json& ds = st.contains("dataset") ? st["dataset"] : pj["dataset"];
  std::string name = ds.value("name", ds.value("kind", "npz") == "synthetic" ? "synthetic" : "?");
  std::string split = ds.value("split", "");
  std::string path = ds.value("path", "");
  for (const char* s : {"XSub", "XView", "XSet"})
    if (path.find(s) != std::string::npos)
      split = s == std::string("XSub") ? "xsub" : s == std::string("XView") ? "xview" : "xset";
  if (split.empty()) split = "xsub";
  std::string kind = st.value("kind", "?");
  if (kind == "semi") {
    double f = st.value("fraction", 0.01);
    kind = "semi" + std::to_string(int(f * 100 + 0.5)) + "%";
  }
  if (kind == "transfer") {
    std::string src = pj["dataset"].value("name", "?");
    kind = "transfer-from-" + src;
  }
  return name + "/" + split + "/" + kind;
}

namespace {

struct Cell {
  std::string text, link;
  std::string order;  // "<finished_utc>|<file>": the newest result fills a cell
};

// Sets a cell unless it already holds a newer result.
void put(std::map<std::string, Cell>& cells, const std::string& col, Cell c) {
  auto it = cells.find(col);
  if (it == cells.end() || it->second.order < c.order) cells[col] = std::move(c);
}

void add_table_command_impl(CLI::App& app) {
  struct Opts {
    std::string dir = "results";
    std::string published;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "table", "Render Markdown and CSV tables of the results beside the published numbers");
  sub->add_option("dir", o->dir, "results directory (default results/)");
  sub->add_option("--published", o->published, "published numbers (default <dir>/published.json)");
  sub->callback([o]() {
    if (!fs::is_directory(o->dir)) throw InputError(o->dir + ": not a directory");
    std::string pub_path = o->published.empty() ? o->dir + "/published.json" : o->published;
    // rows: method label -> column -> cell
    std::map<std::string, std::map<std::string, Cell>> rows;
    std::set<std::string> columns;
    if (fs::exists(pub_path)) {
      json pub;
      try {
        std::ifstream f(pub_path);
        pub = json::parse(f);
      } catch (const std::exception& e) {
        throw InputError(pub_path + ": invalid JSON: " + e.what());
      }
      for (const auto& e : pub.at("entries")) {
        std::string col = e.at("column").get<std::string>();
        columns.insert(col);
        rows[e.at("method").get<std::string>() + " (published)"][col] =
            Cell{f2(e.at("top1").get<double>()) + " " + e.at("tag").get<std::string>(), "", ""};
      }
    }
    for (const auto& entry : fs::recursive_directory_iterator(o->dir)) {
      if (!entry.is_regular_file() || entry.path().extension() != ".json") continue;
      if (entry.path() == fs::path(pub_path)) continue;
      json r;
      try {
        std::ifstream f(entry.path());
        r = json::parse(f);
      } catch (...) {
        continue;
      }
      if (!r.contains("runs") || !r.contains("protocol_json")) continue;
      // Links are relative to the table's directory, so they work where TABLE.md is read.
      std::string link;
      if (r.contains("protocol_file")) {
        std::error_code ec;
        fs::path rel = fs::relative(fs::absolute(r["protocol_file"].get<std::string>()),
                                    fs::absolute(o->dir), ec);
        link = ec ? r["protocol_file"].get<std::string>() : rel.string();
      }
      // Results without finished_utc (before 2026-11-23) count as oldest.
      const std::string order = r.value("finished_utc", "") + "|" + entry.path().string();
      const json& pj = r["protocol_json"];
      std::string method = pj.contains("method") ? pj["method"].value("name", "hacm") : "hacm";
      std::string label =
          (method == "hacm"
               ? "HA-CM " + (pj.contains("method") ? pj["method"].value("variant", "released")
                                                   : "released")
               : "MAMP") +
          " (ours, " + r.value("device", "?") + precision_note(r) + ")";
      // Several synthetic protocols (model sizes, recipes) share a column: one row each, so
      // none hides another. The benchmark datasets have one protocol per column.
      const bool synthetic =
          pj.contains("dataset") && pj["dataset"].value("kind", "npz") == "synthetic";
      const std::string suffix = synthetic ? " · " + r.value("protocol", std::string("?")) : "";
      label += suffix;
      for (size_t i = 0; i < r["runs"][0]["stages"].size(); ++i) {
        std::vector<double> fin, mx;
        for (const auto& run : r["runs"]) {
          const json& s = run["stages"][i];
          if (s.contains("top1_final")) fin.push_back(s["top1_final"]), mx.push_back(s["top1_max"]);
        }
        if (fin.empty()) continue;
        double mf = 0, mm = 0;
        for (size_t k = 0; k < fin.size(); ++k) mf += fin[k], mm += mx[k];
        mf /= double(fin.size()), mm /= double(mx.size());
        std::string col = column_key(pj, i);
        columns.insert(col);
        // A stage trained from a random init (no pretraining) is the random-init encoder's row
        // (fine-tuning records "from", the linear probe "encoder").
        const json& s0 = r["runs"][0]["stages"][i];
        const bool scratch =
            s0.value("from", "") == "scratch" || s0.value("encoder", "") == "random init";
        put(rows[scratch ? "random-init encoder (ours)" + suffix : label], col,
            Cell{f2(mf) + " (max " + f2(mm) + ")" +
                     (fin.size() > 1 ? " n=" + std::to_string(fin.size()) : ""),
                 link, order});
        if (s0.contains("linear_random")) {
          put(rows["random-init encoder (ours)" + suffix], col,
              Cell{f2(s0["linear_random"]["top1_final"]), link, order});
        }
      }
    }
    std::ostringstream md, csv;
    md << "Top-1 % (final epoch; max over epochs on the test set in parentheses, the authors' "
          "convention). "
          "Published cells carry provenance tags [V]/[S]/[R] (datasets-and-protocols.md).\n\n| "
          "method |";
    csv << "method";
    for (const auto& c : columns) md << " " << c << " |", csv << "," << c;
    md << "\n|---|";
    csv << "\n";
    for (size_t i = 0; i < columns.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& [label, cells] : rows) {
      md << "| " << label << " |";
      csv << "\"" << label << "\"";
      for (const auto& c : columns) {
        auto it = cells.find(c);
        if (it == cells.end()) {
          md << " – |";
          csv << ",";
        } else {
          md << " "
             << (it->second.link.empty() ? it->second.text
                                         : "[" + it->second.text + "](" + it->second.link + ")")
             << " |";
          csv << ",\"" << it->second.text << "\"";
        }
      }
      md << "\n";
      csv << "\n";
    }
    std::string md_path = o->dir + "/TABLE.md", csv_path = o->dir + "/table.csv";
    for (auto [path, text] : {std::pair{md_path, md.str()}, std::pair{csv_path, csv.str()}}) {
      std::ofstream f(path + ".tmp");
      f << text;
      f.close();
      fs::rename(path + ".tmp", path);
    }
    std::printf("%s\nwrote %s and %s\n", md.str().c_str(), md_path.c_str(), csv_path.c_str());
    set_exit_code(0);
  });
}

}  // namespace

void add_table_command(CLI::App& app) {
  add_table_command_impl(app);
}

}  // namespace hacm::repro
