#include "core/protocol.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace hacm {

namespace {

// Reads one JSON object, remembering which keys were consumed so leftovers are reported as
// unknown. Every error names the file and the key path ("stages[1].lr").
class ObjectReader {
 public:
  ObjectReader(const nlohmann::json& j, std::string file, std::string path)
      : j_(j), file_(std::move(file)), path_(std::move(path)) {
    if (!j_.is_object())
      fail(path_.empty() ? "the protocol must be a JSON object" : "must be an object");
  }
  [[noreturn]] void fail(const std::string& msg, const std::string& key = "") const {
    std::string where = path_;
    if (!key.empty()) where += (where.empty() ? "" : ".") + key;
    throw InputError(file_ + ": " + (where.empty() ? "" : where + ": ") + msg);
  }
  std::string key_path(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  bool has(const std::string& key) const { return j_.contains(key); }
  const nlohmann::json& at(const std::string& key) {
    seen_.insert(key);
    return j_.at(key);
  }

  std::string str(const std::string& key, const std::string& def,
                  const std::vector<std::string>& allowed = {}) {
    if (!has(key)) return def;
    const auto& v = at(key);
    if (!v.is_string()) fail("must be a string", key);
    std::string s = v.get<std::string>();
    if (!allowed.empty()) {
      bool ok = false;
      std::string list;
      for (const auto& a : allowed) ok |= a == s, list += (list.empty() ? "" : ", ") + a;
      if (!ok) fail("'" + s + "' is not one of: " + list, key);
    }
    return s;
  }
  double num(const std::string& key, double def, double lo, double hi) {
    if (!has(key)) return def;
    const auto& v = at(key);
    if (!v.is_number()) fail("must be a number", key);
    double x = v.get<double>();
    if (!(x >= lo && x <= hi)) {
      std::ostringstream os;
      os << x << " is out of range [" << lo << ", " << hi << "]";
      fail(os.str(), key);
    }
    return x;
  }
  int64_t integer(const std::string& key, int64_t def, int64_t lo, int64_t hi) {
    if (!has(key)) return def;
    const auto& v = at(key);
    if (!v.is_number_integer()) fail("must be an integer", key);
    int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
      fail(std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "]",
           key);
    return x;
  }
  bool boolean(const std::string& key, bool def) {
    if (!has(key)) return def;
    const auto& v = at(key);
    if (!v.is_boolean()) fail("must be true or false", key);
    return v.get<bool>();
  }
  void finish() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) fail("unknown key (see protocols/README.md)", it.key());
  }
  const std::string& file() const { return file_; }

 private:
  const nlohmann::json& j_;
  std::string file_, path_;
  std::set<std::string> seen_;
};

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

DatasetSpec parse_dataset(const nlohmann::json& j, const std::string& file,
                          const std::string& path) {
  ObjectReader r(j, file, path);
  DatasetSpec d;
  d.kind = r.str("kind", "npz", {"npz", "synthetic"});
  d.name = r.str("name", d.kind == "synthetic" ? "synthetic" : "",
                 {"ntu60", "ntu120", "pku1", "pku2", "synthetic"});
  if (d.kind == "npz") {
    if (!r.has("path")) r.fail("missing (the prepared .npz file)", "path");
    d.path = r.str("path", "");
    d.prepare_hint = r.str("prepare", "");
    if (d.name.empty())
      r.fail("missing (ntu60 | ntu120 | pku1 | pku2): it selects the authors' settings", "name");
  } else {
    d.clips = r.integer("clips", 2000, 20, 10000000);
    d.seed = uint64_t(r.integer("seed", 1, 0, INT64_MAX));
    d.split = r.str("split", "xsub", {"xsub", "xview"});
  }
  r.finish();
  return d;
}

MethodSpec parse_method(const nlohmann::json& j, const std::string& file,
                        const std::string& dataset_name) {
  ObjectReader r(j, file, "method");
  MethodSpec m;
  m.name = r.str("name", "hacm", {"hacm", "mamp"});
  const bool mamp = m.name == "mamp";
  m.variant = r.str("variant", "released", {"released", "corrected"});
  if (mamp && r.has("variant")) r.fail("only HA-CM has variants", "variant");
  m.dim = r.integer("dim", 256, 8, 4096);
  m.heads = r.integer("heads", 8, 1, 64);
  if (m.dim % m.heads)
    r.fail("dim (" + std::to_string(m.dim) + ") must be divisible by heads", "heads");
  m.depth = r.integer("depth", 8, 1, 64);
  // MAMP: decoder depth 3 on NTU-60, 5 on NTU-120 and PKU (datasets-and-protocols §2.5).
  int64_t dec_def = mamp && dataset_name != "ntu60" && dataset_name != "synthetic" ? 5 : 3;
  m.decoder_depth = r.integer("decoder_depth", dec_def, 1, 64);
  m.mlp_ratio = r.integer("mlp_ratio", 4, 1, 16);
  m.frames = r.integer("frames", mamp ? 120 : 72, 8, 300);
  m.t_patch = r.integer("t_patch", mamp ? 4 : 3, 1, 16);
  if (m.frames % m.t_patch) r.fail("frames must be a multiple of t_patch", "frames");
  if (!mamp && (m.frames / m.t_patch) % 2)
    r.fail("HA-CM needs an even number of temporal patches", "frames");
  m.keep_ratio = r.num("keep_ratio", 0.1, 1e-3, 1.0);
  m.temperature = r.num("temperature", 0.9, 1e-3, 100.0);
  m.dist_factor = r.num("dist_factor", 4.0, 0.0, 100.0);
  if (m.variant == "released" && !mamp &&
      (m.keep_ratio != 0.1 || m.temperature != 0.9 || m.dist_factor != 4.0))
    r.fail(
        "the released variant hard-codes keep_ratio 0.1, temperature 0.9, dist_factor 4; use "
        "variant "
        "\"corrected\" to change them");
  m.mask_ratio = r.num("mask_ratio", 0.9, 0.0, 0.999);
  m.tau = r.num("tau", dataset_name == "ntu120" ? 0.75 : 0.80, 1e-3, 100.0);
  r.finish();
  return m;
}

}  // namespace

StageSpec default_stage(const std::string& kind, const MethodSpec& m, const std::string& ds) {
  StageSpec s;
  s.kind = kind;
  const bool hacm = m.name == "hacm";
  const bool vel_data = hacm && (ds == "ntu120" || ds == "pku2");  // HA-CM configs with vel: True
  if (kind == "pretrain") {
    s.epochs = hacm ? (ds == "ntu60" ? 500 : 400) : 400;
    s.warmup_epochs = 20;
    s.batch_size = hacm ? 64 : 128;
    s.lr = 1e-3, s.min_lr = 5e-4, s.weight_decay = 0.05, s.beta1 = 0.9, s.beta2 = 0.95;
    s.vel = vel_data;
    s.checkpoint_every = 20;
  } else if (kind == "linear") {
    s.epochs = 100, s.warmup_epochs = 0;
    s.batch_size = ds == "pku1" || ds == "pku2" ? 128 : 256;  // per-GPU batch x 2 GPUs
    s.lr = ds == "pku2" ? 0.01 : 0.1, s.min_lr = 0, s.weight_decay = 0, s.momentum = 0.9;
    s.vel = vel_data;
    s.from = "pretrain";
  } else {  // finetune | semi | transfer
    s.epochs = 100, s.warmup_epochs = 5;
    s.batch_size = 48;  // 24 per GPU x 2
    s.lr = 3e-4, s.min_lr = 1e-5, s.weight_decay = 0.05, s.beta1 = 0.9, s.beta2 = 0.999;
    s.layer_decay = 0.8, s.label_smoothing = 0.1, s.drop_path = 0.3, s.dropout = 0.3;
    s.vel = vel_data;
    s.from = "pretrain";
    if (kind == "semi") s.fraction = 0.01;
  }
  return s;
}

Protocol parse_protocol(const nlohmann::json& j, const std::string& file) {
  ObjectReader r(j, file, "");
  Protocol p;
  p.path = file;
  p.raw = j;
  p.description = r.str("description", "");
  if (!r.has("dataset")) r.fail("missing", "dataset");
  p.dataset = parse_dataset(r.at("dataset"), file, "dataset");
  p.method = r.has("method") ? parse_method(r.at("method"), file, p.dataset.name)
                             : parse_method(nlohmann::json::object(), file, p.dataset.name);
  p.backend = r.str("backend", "accelerated", {"reference", "accelerated"});
  p.device = r.str("device", "auto", {"cpu", "cuda", "auto"});
  p.data_device = r.str("data_device", "auto", {"host", "device", "auto"});
  if (p.backend == "reference" && p.data_device == "device")
    r.fail("the reference backend reads clips on the host only", "data_device");
  p.precision = r.str("precision", "fp32", {"fp32", "tf32", "bf16"});
  if (p.backend == "reference" && p.precision != "fp32")
    r.fail("the reference backend computes in float64; tf32 / bf16 are accelerated-only",
           "precision");
  p.cuda_graphs = r.boolean("cuda_graphs", false);
  if (p.backend == "reference" && p.cuda_graphs)
    r.fail("CUDA graphs are an accelerated-backend option", "cuda_graphs");
  p.custom_kernels = r.boolean("custom_kernels", true);
  if (p.backend == "reference" && r.has("custom_kernels"))
    r.fail("custom CUDA kernels are an accelerated-backend option", "custom_kernels");
  p.threads = int(r.integer("threads", 0, 0, 1024));
  p.random_baseline = r.boolean("random_baseline", false);
  if (r.has("seeds")) {
    const auto& s = r.at("seeds");
    if (!s.is_array() || s.empty()) r.fail("must be a non-empty array of integers", "seeds");
    p.seeds.clear();
    for (size_t i = 0; i < s.size(); ++i) {
      if (!s[i].is_number_integer() || s[i].get<int64_t>() < 0)
        r.fail("must be a non-negative integer", "seeds[" + std::to_string(i) + "]");
      p.seeds.push_back(s[i].get<uint64_t>());
    }
  }
  if (!r.has("stages")) r.fail("missing", "stages");
  const auto& st = r.at("stages");
  if (!st.is_array() || st.empty()) r.fail("must be a non-empty array", "stages");
  bool have_pretrain = false;
  for (size_t i = 0; i < st.size(); ++i) {
    std::string sp = "stages[" + std::to_string(i) + "]";
    ObjectReader s(st[i], file, sp);
    std::string kind = s.str("kind", "", {"pretrain", "linear", "semi", "finetune", "transfer"});
    if (kind.empty()) s.fail("missing (pretrain | linear | semi | finetune | transfer)", "kind");
    StageSpec d = default_stage(kind, p.method, p.dataset.name);
    if (kind == "pretrain") {
      if (i != 0) s.fail("pretrain must be the first stage", "kind");
      have_pretrain = true;
    }
    d.epochs = s.integer("epochs", d.epochs, 1, 100000);
    d.warmup_epochs = s.num("warmup_epochs", d.warmup_epochs, 0, double(d.epochs));
    d.batch_size = s.integer("batch_size", d.batch_size, 1, 1 << 20);
    d.lr = s.num("lr", d.lr, 0, 100);
    d.min_lr = s.num("min_lr", d.min_lr, 0, 100);
    d.weight_decay = s.num("weight_decay", d.weight_decay, 0, 10);
    d.beta1 = s.num("beta1", d.beta1, 0, 0.999999);
    d.beta2 = s.num("beta2", d.beta2, 0, 0.999999999);
    d.momentum = s.num("momentum", d.momentum, 0, 0.999999);
    d.layer_decay = s.num("layer_decay", d.layer_decay, 0.01, 1.0);
    d.label_smoothing = s.num("label_smoothing", d.label_smoothing, 0, 0.99);
    d.drop_path = s.num("drop_path", d.drop_path, 0, 0.99);
    d.dropout = s.num("dropout", d.dropout, 0, 0.99);
    d.fraction = s.num("fraction", d.fraction, 1e-6, 1.0);
    d.vel = s.boolean("vel", d.vel);
    d.checkpoint_every = s.integer("checkpoint_every", d.checkpoint_every, 0, 100000);
    d.eval_every = s.integer("eval_every", d.eval_every, 1, 100000);
    if (kind != "pretrain") {
      d.from = s.str("from", have_pretrain ? "pretrain" : "scratch", {"pretrain", "scratch"});
      if (d.from == "pretrain" && !have_pretrain)
        s.fail("'pretrain' needs a pretrain stage first", "from");
    }
    if (kind == "transfer") {
      if (!s.has("dataset")) s.fail("missing (the target dataset)", "dataset");
      d.dataset = parse_dataset(s.at("dataset"), file, sp + ".dataset");
      d.has_dataset = true;
    }
    if (d.min_lr > d.lr) s.fail("min_lr is larger than lr", "min_lr");
    s.finish();
    p.stages.push_back(d);
  }
  r.finish();
  // Missing data files are input errors too, reported before any work.
  auto check_file = [&](const DatasetSpec& d, const std::string& key) {
    if (d.kind != "npz" || file_exists(d.path)) return;
    std::string how = d.prepare_hint.empty()
                          ? "make it with `repro prepare " + d.name + " --raw <DIR> --out <DIR>`"
                          : "make it with `" + d.prepare_hint + "`";
    throw InputError(file + ": " + key + ".path: " + d.path + " not found; " + how);
  };
  check_file(p.dataset, "dataset");
  for (size_t i = 0; i < p.stages.size(); ++i)
    if (p.stages[i].has_dataset)
      check_file(p.stages[i].dataset, "stages[" + std::to_string(i) + "].dataset");
  return p;
}

Protocol load_protocol(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot open protocol file");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string bytes = ss.str();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the offset; report the line for the user.
    long line = 1;
    for (size_t i = 0; i < std::min(bytes.size(), size_t(e.byte)); ++i) line += bytes[i] == '\n';
    throw input_error(path, line, std::string("invalid JSON: ") + e.what());
  }
  Protocol p = parse_protocol(j, path);
  std::string base = path.substr(path.find_last_of('/') + 1);
  p.name = base.size() > 5 && base.substr(base.size() - 5) == ".json"
               ? base.substr(0, base.size() - 5)
               : base;
  p.sha256 = sha256_hex(bytes);
  return p;
}

// SHA-256 (FIPS 180-4), written here to avoid a crypto dependency for one checksum.
std::string sha256_hex(const std::string& bytes) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
      0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
      0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
      0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
      0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
      0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
      0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
      0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::string m = bytes;
  uint64_t bitlen = uint64_t(bytes.size()) * 8;
  m.push_back(char(0x80));
  while (m.size() % 64 != 56) m.push_back(0);
  for (int i = 7; i >= 0; --i) m.push_back(char((bitlen >> (8 * i)) & 0xff));
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  for (size_t off = 0; off < m.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(uint8_t(m[off + 4 * i])) << 24 | uint32_t(uint8_t(m[off + 4 * i + 1])) << 16 |
             uint32_t(uint8_t(m[off + 4 * i + 2])) << 8 | uint32_t(uint8_t(m[off + 4 * i + 3]));
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = hh + S1 + ch + k[i] + w[i];
      uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = S0 + mj;
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  char out[65];
  for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h[i]);
  return std::string(out, 64);
}

}  // namespace hacm
