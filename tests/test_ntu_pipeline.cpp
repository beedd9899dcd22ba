// The SGN/CTR-GCN/MAMP NTU pipeline: the acceptance cross-check against CTR-GCN's own output
// (NTU60_CS.npz x_test[9] from S017C003P020R002A059.skeleton), every denoising rule on small
// synthetic files, numpy-exact sums, and the ordered parallel map / spill file helpers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/npz.h"
#include "core/ntu.h"
#include "core/ntu_pipeline.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

namespace hacm {
namespace {

std::string ntu(const std::string& name) {
  return test::real("ntu/" + name);
}

// ---- acceptance: CTR-GCN's output for the one raw file we have ----

TEST(NtuPipeline, ReproducesCtrGcnSample) {
  std::string raw = ntu("S017C003P020R002A059.skeleton"), npz = ntu("npz/NTU60_CS.npz");
  REQUIRE_FIXTURE(raw);
  REQUIRE_FIXTURE(npz);
  NtuSequence seq;
  ASSERT_EQ(ntu_sgn_pipeline(read_ntu_skeleton(raw), &seq), NtuSkip::none);
  EXPECT_EQ(seq.actors, 2);
  EXPECT_EQ(seq.frames, 111);
  std::vector<float> out(300 * 150, -1.f);
  EXPECT_EQ(ntu_align(seq, /*ntu120=*/false, out.data()), 111);

  NpzReader r(npz);
  NdArray x = r.get("x_test");
  ASSERT_EQ(x.shape, (std::vector<int64_t>{11, 111, 150}));
  std::vector<float> all = x.to_f32();  // numpy-written member: the view may be misaligned
  std::vector<float> ref(all.begin() + 9 * 111 * 150, all.begin() + 10 * 111 * 150);
  std::vector<float> got(out.begin(), out.begin() + 111 * 150);
  // Exact: the original computes in float32 (text -> Python float -> float32, float32 variance,
  // float32 subtraction of the origin) and we repeat those operations in the same order.
  EXPECT_CLOSE("x_test[9] (111 frames)", got, ref, 0.0, 0.0, {111, 150});
  std::vector<float> tail(out.begin() + 111 * 150, out.end()), zeros(tail.size(), 0.f);
  EXPECT_CLOSE("padding frames 111..299", tail, zeros, 0.0, 0.0);  // zero padding is exact
  // The file has frames with 1 and 2 bodies: both actor slots carry data somewhere.
  int f2 = 0;
  for (int f = 0; f < 111; ++f) {
    bool any = false;
    for (int k = 75; k < 150; ++k) any |= out[size_t(f) * 150 + k] != 0.f;
    f2 += any;
  }
  EXPECT_EQ(f2, 32);
}

// ---- real single/two-actor files ----

TEST(NtuPipeline, SingleActorRealFile) {
  std::string raw = ntu("S001C001P001R001A001.skeleton");
  REQUIRE_FIXTURE(raw);
  NtuSkeleton sk = read_ntu_skeleton(raw);
  NtuSequence seq;
  ASSERT_EQ(ntu_sgn_pipeline(sk, &seq), NtuSkip::none);
  EXPECT_EQ(seq.actors, 1);
  EXPECT_EQ(seq.frames, 103);
  // Origin = joint 2 of frame 0: those coordinates become exactly 0, everything else is the raw
  // value minus that origin in float32.
  const auto& b = sk.bodies[0].xyz;
  std::vector<float> got(seq.joints.begin(), seq.joints.end()), ref(b.size());
  for (size_t i = 0; i < b.size(); ++i) ref[i] = b[i] - b[3 + i % 3];
  EXPECT_CLOSE("single actor translated", got, ref, 0.0, 0.0);  // same float32 operation
  EXPECT_EQ(seq.joints[3], 0.f);
  std::vector<float> a60(300 * 150), a120(300 * 150);
  ntu_align(seq, false, a60.data());
  ntu_align(seq, true, a120.data());
  for (int f = 0; f < 300; ++f)
    for (int k = 0; k < 75; ++k) {
      size_t i = size_t(f) * 150 + size_t(k);
      ASSERT_EQ(a60[i], a120[i]);
      ASSERT_EQ(a60[i + 75], 0.f) << "NTU-60 pads the second actor with zeros";
      ASSERT_EQ(a120[i + 75], a120[i]) << "NTU-120 duplicates the single actor";
    }
}

TEST(NtuPipeline, TwoActorRealFile) {
  std::string raw = ntu("S001C003P008R002A058.skeleton");
  REQUIRE_FIXTURE(raw);
  NtuSkeleton sk = read_ntu_skeleton(raw);
  NtuSequence seq;
  ASSERT_EQ(ntu_sgn_pipeline(sk, &seq), NtuSkip::none);
  EXPECT_EQ(seq.actors, 2);
  EXPECT_EQ(seq.frames, 70);
  EXPECT_EQ(seq.joints[3], 0.f);  // joint 2 of actor 1, first frame
  EXPECT_EQ(seq.joints[4], 0.f);
  EXPECT_EQ(seq.joints[5], 0.f);
  // Actor 1 is the body with the larger motion; both are present in all 70 frames.
  ASSERT_EQ(sk.bodies.size(), 2u);
  float m0 = np_var_sum3(sk.bodies[0].xyz.data(), int64_t(sk.bodies[0].count) * 25);
  float m1 = np_var_sum3(sk.bodies[1].xyz.data(), int64_t(sk.bodies[1].count) * 25);
  const NtuBody& main = m0 >= m1 ? sk.bodies[0] : sk.bodies[1];
  const NtuBody& other = m0 >= m1 ? sk.bodies[1] : sk.bodies[0];
  EXPECT_EQ(seq.joints[0], main.xyz[0] - main.xyz[3]);
  EXPECT_EQ(seq.joints[75], other.xyz[0] - main.xyz[3]);
}

TEST(NtuPipeline, ZeroBodyFileIsSkipped) {
  std::string raw = ntu("S001C002P006R001A008.skeleton");
  REQUIRE_FIXTURE(raw);
  NtuSequence seq;
  EXPECT_EQ(ntu_sgn_pipeline(read_ntu_skeleton(raw), &seq), NtuSkip::no_bodies);
}

// ---- synthetic files for each rule ----

// A body appearance: id and its 25 joints made from (x, y, z) + joint offsets.
struct App {
  std::string id;
  float x, y, z;
  float xspread = 0.01f, yspread = 0.1f;  // per-joint step in x and y
};

std::string make_file(const std::vector<std::vector<App>>& frames) {
  std::string t = std::to_string(frames.size()) + "\n";
  char buf[128];
  for (const auto& fr : frames) {
    t += std::to_string(fr.size()) + "\n";
    for (const auto& a : fr) {
      t += a.id + " 0 1 1 1 1 0 0.1 0.2 2\n25\n";
      for (int j = 0; j < 25; ++j) {
        std::snprintf(buf, sizeof buf, "%.6f %.6f %.6f 1 2 3 4 0 0 0 0 2\n", a.x + a.xspread * j,
                      a.y + a.yspread * j, a.z);
        t += buf;
      }
    }
  }
  return t;
}

NtuSequence run(const std::string& text, NtuSkip expect = NtuSkip::none) {
  NtuSkeleton sk = parse_ntu_skeleton(text.data(), text.size(), "synthetic");
  NtuSequence seq;
  EXPECT_EQ(ntu_sgn_pipeline(sk, &seq), expect);
  return seq;
}

// Body A moves (large motion), body B barely.
App moving(int f) {
  return {"100", 0.1f * f, 0.f, 3.f};
}
App still(int f) {
  return {"200", 1.f + 0.0001f * (f % 2), 0.f, 3.f};
}

TEST(NtuDenoise, LengthFilterDropsShortBodies) {
  std::vector<std::vector<App>> fr;
  for (int f = 0; f < 30; ++f) {
    std::vector<App> v = {moving(f)};
    if (f >= 5 && f < 16) v.push_back(still(f));  // 11 frames: dropped (<= 11)
    fr.push_back(v);
  }
  NtuSequence s = run(make_file(fr));
  EXPECT_EQ(s.actors, 1);  // one body left: 75 columns
  EXPECT_EQ(s.frames, 30);
  // 12 frames: kept, becomes actor 2 (less motion).
  fr.clear();
  for (int f = 0; f < 30; ++f) {
    std::vector<App> v = {moving(f)};
    if (f >= 5 && f < 17) v.push_back(still(f));
    fr.push_back(v);
  }
  s = run(make_file(fr));
  EXPECT_EQ(s.actors, 2);
  EXPECT_EQ(s.frames, 30);
  EXPECT_EQ(s.joints[4 * 150 + 75], 0.f);  // actor 2 absent in frame 4
  EXPECT_NE(s.joints[5 * 150 + 75], 0.f);  // present from frame 5
  // x of still(5) ("1.000100") minus the origin x (joint 2 of body 100 in frame 0, "0.010000").
  EXPECT_EQ(s.joints[5 * 150 + 75], float(1.0001) - float(0.01));
}

TEST(NtuDenoise, OneBodyLeftLosesFramesOutsideItsInterval) {
  // Body A only in frames 0..19, body B (short) in frames 20..24: B is dropped by length, A is
  // the only actor, and the frames without A (all zero) are removed: 20 frames, 75 columns.
  std::vector<std::vector<App>> fr;
  for (int f = 0; f < 25; ++f) fr.push_back({f < 20 ? moving(f) : still(f)});
  NtuSequence s = run(make_file(fr));
  EXPECT_EQ(s.actors, 1);
  EXPECT_EQ(s.frames, 20);
}

TEST(NtuDenoise, AllBodiesShortIsSkipped) {
  std::vector<std::vector<App>> fr;
  for (int f = 0; f < 20; ++f) fr.push_back({f < 10 ? moving(f) : still(f)});
  run(make_file(fr), NtuSkip::no_bodies_left);
}

TEST(NtuDenoise, SingleBodyBypassesDenoising) {
  // One bodyID of 5 frames with a huge x spread: kept as is (no filter applies to 1 bodyID).
  std::vector<std::vector<App>> fr;
  for (int f = 0; f < 5; ++f) {
    App a = moving(f);
    a.xspread = 1.f;
    fr.push_back({a});
  }
  NtuSequence s = run(make_file(fr));
  EXPECT_EQ(s.actors, 1);
  EXPECT_EQ(s.frames, 5);
}

TEST(NtuDenoise, SpreadFilter) {
  // Body C: x spread > 0.8 * y spread in 21 of 30 frames (ratio 0.7 >= 0.69754): dropped even
  // though it moves most. With 20 noisy frames (0.667) it stays, its motion lowered to that of
  // its valid frames.
  for (int noisy : {21, 20}) {
    std::vector<std::vector<App>> fr;
    for (int f = 0; f < 30; ++f) {
      App c{"300", 0.5f * f, 0.f, 2.f};
      if (f < noisy) c.xspread = 0.2f, c.yspread = 0.1f;  // wide: noisy
      fr.push_back({still(f), c});
    }
    NtuSequence s = run(make_file(fr));
    if (noisy == 21) {
      EXPECT_EQ(s.actors, 1) << "body 300 dropped by spread";
      EXPECT_EQ(s.frames, 30);
      EXPECT_EQ(s.joints[0], float(1.0) - float(1.01));  // body 200 is the actor: its origin
    } else {
      EXPECT_EQ(s.actors, 2);
    }
  }
}

TEST(NtuDenoise, MotionThresholdIsNotApplied) {
  // Body B's motion (~1e-9) is far below 0.089925: the original's motion filter is dead code,
  // so B is still actor 2.
  std::vector<std::vector<App>> fr;
  for (int f = 0; f < 30; ++f) {
    App b = still(f);
    b.xspread = 0.001f, b.yspread = 0.01f;  // var sum ~ 0.0053
    fr.push_back({moving(f), b});
  }
  const std::string text = make_file(fr);
  NtuSkeleton sk = parse_ntu_skeleton(text.data(), text.size(), "synthetic");
  EXPECT_LT(np_var_sum3(sk.bodies[1].xyz.data(), 30 * 25), 0.089925f);
  NtuSequence s = run(text);
  EXPECT_EQ(s.actors, 2);
  EXPECT_NE(s.joints[75], 0.f);
}

TEST(NtuDenoise, ActorSlotsFollowIntervals) {
  // A (most motion) frames 0..14; C frames 15..29 (no overlap with A: appended to actor 1's
  // slot); B frames 0..29 (overlaps: actor 2); D frames 3..20 overlaps both: discarded.
  std::vector<std::vector<App>> fr;
  for (int f = 0; f < 30; ++f) {
    std::vector<App> v;
    if (f < 15) v.push_back({"A", 0.3f * f, 0.f, 3.f});
    if (f >= 15) v.push_back({"C", 0.2f * f, 0.5f, 3.f});
    v.push_back({"B", 0.05f * f, 1.f, 3.f});
    if (f >= 3 && f <= 20) v.push_back({"D", 0.01f * f, 2.f, 3.f});
    fr.push_back(v);
  }
  NtuSequence s = run(make_file(fr));
  ASSERT_EQ(s.actors, 2);
  ASSERT_EQ(s.frames, 30);
  // Origin = joint 2 of A in frame 0: (0.01, 0.1, 3).
  float ox = 0.01f, oy = 0.1f;
  EXPECT_FLOAT_EQ(s.joints[20 * 150 + 1], 0.5f - oy);      // frame 20, actor 1 = C (y 0.5)
  EXPECT_FLOAT_EQ(s.joints[10 * 150 + 1], 0.f - oy);       // frame 10, actor 1 = A (y 0)
  EXPECT_FLOAT_EQ(s.joints[10 * 150 + 75 + 1], 1.f - oy);  // actor 2 = B (y 1), not D (y 2)
  EXPECT_FLOAT_EQ(s.joints[10 * 150], 0.3f * 10 - ox);
}

TEST(NtuTranslate, OriginFromFirstNonZeroFrameAndRezeroing) {
  NtuSequence s;
  s.actors = 2;
  s.frames = 3;
  s.joints.assign(3 * 150, 0.f);
  // frame 0: actor 1 absent, actor 2 present; frame 1: both; frame 2: actor 2 absent.
  for (int k = 75; k < 150; ++k) s.joints[k] = 5.f;
  for (int k = 0; k < 150; ++k) s.joints[150 + k] = float(k);
  for (int k = 0; k < 75; ++k) s.joints[300 + k] = 1.f;
  ASSERT_EQ(ntu_translate(&s), NtuSkip::none);
  // origin = frame 1 cols 3:6 = (3, 4, 5)
  EXPECT_EQ(s.joints[0], 0.f);         // actor 1 missing in frame 0: re-zeroed
  EXPECT_EQ(s.joints[75], 5.f - 3.f);  // actor 2 translated
  EXPECT_EQ(s.joints[150 + 3], 0.f);
  EXPECT_EQ(s.joints[150 + 7], 7.f - 4.f);
  EXPECT_EQ(s.joints[300 + 2], 1.f - 5.f);
  EXPECT_EQ(s.joints[300 + 75], 0.f);  // actor 2 missing in frame 2: re-zeroed
  NtuSequence z;
  z.actors = 2;
  z.frames = 2;
  z.joints.assign(300, 0.f);
  for (int k = 75; k < 150; ++k) z.joints[k] = 1.f;
  EXPECT_EQ(ntu_translate(&z), NtuSkip::actor1_never_seen);
}

TEST(NtuAlign, LongSequencesKeepFirst300) {
  NtuSequence s;
  s.actors = 1;
  s.frames = 310;
  s.joints.resize(310 * 75);
  for (size_t i = 0; i < s.joints.size(); ++i) s.joints[i] = float(i / 75 + 1);
  std::vector<float> out(300 * 150);
  EXPECT_EQ(ntu_align(s, true, out.data()), 300);
  EXPECT_EQ(out[299 * 150], 300.f);
  EXPECT_EQ(out[299 * 150 + 75], 300.f);
}

// ---- numpy-exact sums ----

TEST(NumpySums, PairwiseDiffersFromSequentialLikeNumpy) {
  // 2^24 + 1 rounds back to 2^24 in float32: a sequential sum of [2^24, 1 x 15] stays 2^24,
  // numpy's 8-accumulator pairwise sum gets 2^24 + 14 (accumulators 1..7 hold 2 each).
  std::vector<float> a(16, 1.f);
  a[0] = 16777216.f;
  EXPECT_EQ(np_pairwise_sum(a.data(), 16), 16777230.f);
  float seq = 0.f;
  for (float v : a) seq += v;
  EXPECT_EQ(seq, 16777216.f);
  // n < 8: sequential from 0.
  EXPECT_EQ(np_pairwise_sum(a.data(), 7), 16777216.f);
  // n > 128: split at n/2 rounded down to a multiple of 8 (150 -> 72 + 78).
  std::vector<double> d(150);
  for (int i = 0; i < 150; ++i) d[size_t(i)] = (i % 3 == 0 ? 1e16 : 1.0) * (i % 2 ? -1 : 1);
  double ref = 0.0;
  {
    auto block = [&](int b, int n) {  // n <= 128 block as numpy does it
      double r[8];
      for (int k = 0; k < 8; ++k) r[k] = d[size_t(b + k)];
      int i = 8;
      for (; i < n - n % 8; i += 8)
        for (int k = 0; k < 8; ++k) r[k] += d[size_t(b + i + k)];
      double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
      for (; i < n; ++i) s += d[size_t(b + i)];
      return s;
    };
    ref = block(0, 72) + block(72, 78);
  }
  EXPECT_EQ(np_pairwise_sum(d.data(), 150), ref);
  // Strided rows (a column slice of a 2-D array).
  std::vector<float> m(20 * 2, 2.f);
  EXPECT_EQ(np_pairwise_sum(m.data() + 1, 20, 2), 40.f);
}

TEST(NumpySums, VarianceSum) {
  // x = rows (0,0,0), (2,4,6): var per column = 1, 4, 9 -> 14.
  std::vector<float> x = {0, 0, 0, 2, 4, 6};
  EXPECT_EQ(np_var_sum3(x.data(), 2), 14.f);
}

// ---- helpers ----

TEST(ParallelOrdered, OrderWindowAndErrors) {
  for (int threads : {1, 2, 4}) {
    std::vector<int64_t> seen;
    std::atomic<int> in_flight{0}, max_in_flight{0};
    parallel_ordered<int64_t>(
        200, threads, 6,
        [&](int64_t i) {
          int now = ++in_flight;
          int m = max_in_flight.load();
          while (now > m && !max_in_flight.compare_exchange_weak(m, now)) {
          }
          if (i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
          --in_flight;
          return i * i;
        },
        [&](int64_t i, int64_t&& v) {
          EXPECT_EQ(v, i * i);
          seen.push_back(i);
        });
    ASSERT_EQ(seen.size(), 200u);
    for (int64_t i = 0; i < 200; ++i) EXPECT_EQ(seen[size_t(i)], i);
    EXPECT_LE(max_in_flight.load(), std::max(threads, 6));
  }
  // The first failing index in order is reported, whatever finishes first.
  for (int threads : {1, 3}) {
    try {
      parallel_ordered<int>(
          100, threads, 8,
          [&](int64_t i) -> int {
            if (i == 40) {
              std::this_thread::sleep_for(std::chrono::milliseconds(5));
              throw std::runtime_error("fail 40");
            }
            if (i == 41) throw std::runtime_error("fail 41");
            return 0;
          },
          [&](int64_t, int&&) {});
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "fail 40");
    }
  }
}

TEST(Spill, RoundTripAcrossBufferFlushes) {
  SpillFile sp(test::scratch_dir("spill"));
  std::vector<int64_t> offs;
  std::vector<std::vector<float>> data;
  for (int k = 0; k < 40; ++k) {
    std::vector<float> v(size_t(k % 5 == 0 ? 600000 : 1000 + k));  // some bigger than the buffer
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(k * 1000003 + int(i));
    offs.push_back(sp.append(v.data(), v.size() * sizeof(float)));
    data.push_back(std::move(v));
    if (k % 9 == 0) {  // reads interleaved with appends
      std::vector<float> back(data[0].size());
      sp.read(offs[0], back.data(), back.size() * sizeof(float));
      ASSERT_EQ(back, data[0]);
    }
  }
  for (size_t k = 0; k < data.size(); ++k) {
    std::vector<float> back(data[k].size());
    sp.read(offs[k], back.data(), back.size() * sizeof(float));
    ASSERT_EQ(back, data[k]) << k;
  }
}

}  // namespace
}  // namespace hacm
