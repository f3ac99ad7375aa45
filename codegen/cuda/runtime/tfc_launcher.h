// The generated launcher's main (codegen/cuda/launcher.ts prints a ModelInfo: buffer tables, size
// functions and the step list, then calls launcherMain). Two modes:
//   launcher WEIGHTS INPUTS OUT [DIM=VALUE ...]   one forward: safetensors in, safetensors out
//   launcher --serve WEIGHTS                      weights uploaded once, then requests on stdin
// Serve protocol (all integers little-endian; one request at a time, answered in order):
//   ready:    the launcher writes one line {"ok":true,"model":NAME,"h2d":WEIGHT_BYTES,"d2h":0}
//   request:  one line of JSON, then the raw bytes of each host input in the order listed:
//     {"dims":{"P":5},                       dims to bind (optional; bare-dim input axes bind the rest)
//      "inputs":[{"name":"tokens","dtype":"I32","shape":[1,1]}],   host tensors (safetensors dtypes)
//      "device":{"past.0.key":"present.0.key"},   inputs bound to tensors kept by the previous request
//      "keep":["present.0.key"],             outputs that stay on the device for the next request
//      "fetch":["logits"]}                   outputs sent back
//   response: one line {"ok":true,"outputs":[{"name","dtype","shape"}...],"h2d":B,"d2h":B,"ms":X},
//             then each fetched output's bytes (F32 for floats, I32 for i32/bool), in "fetch" order.
//             h2d/d2h: bytes this request copied through tfc_memcpy_*; ms: kernel time.
//   error:    one line {"ok":false,"error":MESSAGE}; nothing was run and the kept tensors are
//             unchanged. A header that is not JSON consumes no payload; one that parses has its
//             payload read (and dropped). Where the framing is lost (unknown dtype, EOF inside a
//             payload, a header over 1 MiB) the error line has "fatal":true and the launcher exits 1.
// Kept tensors live until the next request that succeeds: its own "keep" outputs replace them
// (the ones it read through "device" included). EOF on stdin at a request boundary: exit 0.
#ifndef TFC_LAUNCHER_H
#define TFC_LAUNCHER_H

#include <string_view>

#include "tfc_runtime.h"

namespace tfc {

enum class Kind { Input, Weight, Output, Temp };

// One tensor of a packed weight (pack-weights): `rows` rows of the safetensors tensor `name`.
struct WeightPart {
  std::string_view name;
  uint64_t rows;
};

struct BufferInfo {
  Kind kind;
  std::string_view name;  // safetensors name (inputs, weights, outputs; may hold NUL bytes); "" for temps
  const char* dtype;  // plan dtype: f32 f16 bf16 i32 bool
  int rank;
  const int* axisDims;  // per axis: the dim index when the axis is a bare dim, else -1 (inputs)
  int slot;             // temps: the shared slot (live-range assignment), else -1
  uint64_t rowsStart, rowsEnd, rowsTotal;  // a weight row chunk (rowsTotal > 0), else 0
  int partCount;                           // a packed weight: its parts, one after another, else 0
  const WeightPart* parts;
};

struct OutputInfo {
  std::string_view name;
  int buffer;
};

// Names are string_views of the generated literals ("..."sv): a model's names may hold NUL bytes.
struct ModelInfo {
  std::string_view model;
  int dimCount;
  const std::string_view* dimNames;
  int bufferCount;
  const BufferInfo* buffers;
  int outputCount;
  const OutputInfo* outputs;
  int slotCount;
  uint64_t (*elements)(int buffer, const uint64_t* d);
  void (*shape)(int buffer, const uint64_t* d, uint64_t* out);
  void (*run)(void* const* buf, const uint64_t* d);
};

/** Bytes per element in device memory (src/kernel/ir/storage.ts: bool and bf16 as 4 bytes, i8 as 1). */
inline uint64_t elementBytes(const BufferInfo& b) { return tfc::storageBytes(b.dtype); }

inline std::vector<uint64_t> shapeOf(const ModelInfo& m, int b, const std::vector<uint64_t>& d) {
  std::vector<uint64_t> s(static_cast<size_t>(m.buffers[b].rank) + 1, 0);
  m.shape(b, d.data(), s.data());
  s.resize(static_cast<size_t>(m.buffers[b].rank));
  return s;
}

inline std::string shapeText(const std::vector<uint64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); i++) t += (i > 0 ? "," : "") + std::to_string(s[i]);
  return t + "]";
}

/** Uploads every weight (row chunks of split weights from their rows); returns buffer -> pointer. */
inline std::vector<void*> uploadWeights(const ModelInfo& m, const File& weights, const std::vector<uint64_t>& d) {
  std::vector<void*> ptr(static_cast<size_t>(m.bufferCount), nullptr);
  for (int b = 0; b < m.bufferCount; b++) {
    const BufferInfo& info = m.buffers[b];
    if (info.kind != Kind::Weight) continue;
    const uint64_t n = m.elements(b, d.data());
    ptr[static_cast<size_t>(b)] = tfc_malloc(n * elementBytes(info));
    std::vector<unsigned char> v;
    if (info.partCount > 0) {
      // The parts' rows one after another (each row has the same n / total rows elements).
      uint64_t total = 0;
      for (int p = 0; p < info.partCount; p++) total += info.parts[p].rows;
      const uint64_t row = n / total;
      for (int p = 0; p < info.partCount; p++) {
        const uint64_t k = info.parts[p].rows * row;
        const std::vector<unsigned char> part = encode(tensorOf(weights, std::string(info.parts[p].name), k), info.dtype, 0, k);
        v.insert(v.end(), part.begin(), part.end());
      }
    } else if (info.rowsTotal == 0) {
      v = encode(tensorOf(weights, std::string(info.name), n), info.dtype, 0, n);
    } else {
      const uint64_t row = n / (info.rowsEnd - info.rowsStart);
      v = encode(tensorOf(weights, std::string(info.name), row * info.rowsTotal), info.dtype, row * info.rowsStart, n);
    }
    tfc_memcpy_h2d(ptr[static_cast<size_t>(b)], v.data(), v.size());
  }
  return ptr;
}

// ---- one forward: launcher WEIGHTS INPUTS OUT [DIM=VALUE ...] ----

inline int runOnce(const ModelInfo& m, int argc, char** argv) {
  if (argc < 4) fail("usage: launcher WEIGHTS.safetensors INPUTS.safetensors OUT.safetensors [DIM=VALUE ...] | launcher --serve WEIGHTS.safetensors");
  std::vector<uint64_t> d(static_cast<size_t>(m.dimCount) + 1, 0);
  std::vector<bool> bound(static_cast<size_t>(m.dimCount) + 1, false);
  for (int a = 4; a < argc; a++) {
    const std::string arg = argv[a];
    const size_t eq = arg.find('=');
    bool known = false;
    for (int i = 0; i < m.dimCount && eq != std::string::npos; i++) {
      if (eq != std::string::npos && std::string_view(arg).substr(0, eq) == m.dimNames[i]) {
        d[static_cast<size_t>(i)] = std::stoull(arg.substr(eq + 1));
        bound[static_cast<size_t>(i)] = known = true;
      }
    }
    if (!known) fail("unknown dim argument " + arg);
  }
  const File weights = readSafetensors(argv[1]);
  const File inputs = readSafetensors(argv[2]);
  // Dims from input axes that are a bare dim (the arguments win), then every input shape checked.
  for (int b = 0; b < m.bufferCount; b++) {
    const BufferInfo& info = m.buffers[b];
    if (info.kind != Kind::Input) continue;
    auto it = inputs.tensors.find(std::string(info.name));
    if (it == inputs.tensors.end() || it->second.shape.size() != static_cast<size_t>(info.rank)) continue;
    for (int i = 0; i < info.rank; i++) {
      const int di = info.axisDims[i];
      if (di >= 0 && !bound[static_cast<size_t>(di)]) d[static_cast<size_t>(di)] = it->second.shape[static_cast<size_t>(i)], bound[static_cast<size_t>(di)] = true;
    }
  }
  for (int i = 0; i < m.dimCount; i++) if (!bound[static_cast<size_t>(i)]) fail("dim " + std::string(m.dimNames[i]) + " is not bound (pass " + std::string(m.dimNames[i]) + "=VALUE)");
  for (int b = 0; b < m.bufferCount; b++) {
    const BufferInfo& info = m.buffers[b];
    if (info.kind != Kind::Input) continue;
    const Tensor& t = tensorOf(inputs, std::string(info.name), m.elements(b, d.data()));
    const std::vector<uint64_t> want = shapeOf(m, b, d);
    if (t.shape.size() != want.size()) fail(inputs.path + ": input " + std::string(info.name) + " has rank " + std::to_string(t.shape.size()) + ", the model declares " + std::to_string(want.size()));
    for (size_t i = 0; i < want.size(); i++) if (t.shape[i] != want[i]) fail(inputs.path + ": input " + std::string(info.name) + " axis " + std::to_string(i) + " is " + std::to_string(t.shape[i]) + ", the dims give " + std::to_string(want[i]));
  }
  // Device memory: weights, inputs and outputs own theirs; temps share slots by live range.
  std::vector<void*> buf = uploadWeights(m, weights, d);
  std::vector<void*> owned;
  for (void* p : buf) if (p != nullptr) owned.push_back(p);
  std::vector<uint64_t> slotBytes(static_cast<size_t>(m.slotCount), 0);
  for (int b = 0; b < m.bufferCount; b++) {
    const BufferInfo& info = m.buffers[b];
    if (info.kind == Kind::Temp) slotBytes[static_cast<size_t>(info.slot)] = umax(slotBytes[static_cast<size_t>(info.slot)], m.elements(b, d.data()) * elementBytes(info));
  }
  std::vector<void*> slot(static_cast<size_t>(m.slotCount), nullptr);
  for (int s = 0; s < m.slotCount; s++) owned.push_back(slot[static_cast<size_t>(s)] = tfc_malloc(slotBytes[static_cast<size_t>(s)]));
  for (int b = 0; b < m.bufferCount; b++) {
    const BufferInfo& info = m.buffers[b];
    const uint64_t n = m.elements(b, d.data());
    if (info.kind == Kind::Temp) buf[static_cast<size_t>(b)] = slot[static_cast<size_t>(info.slot)];
    if (info.kind == Kind::Output) owned.push_back(buf[static_cast<size_t>(b)] = tfc_malloc(n * elementBytes(info)));
    if (info.kind == Kind::Input) {
      owned.push_back(buf[static_cast<size_t>(b)] = tfc_malloc(n * elementBytes(info)));
      const std::vector<unsigned char> v = encode(tensorOf(inputs, std::string(info.name), n), info.dtype, 0, n);
      tfc_memcpy_h2d(buf[static_cast<size_t>(b)], v.data(), v.size());
    }
  }
  m.run(buf.data(), d.data());
  tfc_sync();
  // TFC_LAUNCH_REPEAT=N: N more runs of every step, timed (cudaEvent on a GPU), for benchmarks.
  const char* repeat = std::getenv("TFC_LAUNCH_REPEAT");
  if (repeat != nullptr && std::atoi(repeat) > 0) {
    const int n = std::atoi(repeat);
    Timer timer;
    for (int r = 0; r < n; r++) m.run(buf.data(), d.data());
    const double ms = timer.stopMs();
    std::fprintf(stderr, "tfc launcher: %d runs, %.6f ms per run\n", n, ms / n);
  }
  std::vector<Output> outs;
  for (int k = 0; k < m.outputCount; k++) {
    const int b = m.outputs[k].buffer;
    Output o{std::string(m.outputs[k].name), m.buffers[b].dtype, shapeOf(m, b, d), {}};
    o.storage.resize(m.elements(b, d.data()) * elementBytes(m.buffers[b]));
    tfc_memcpy_d2h(o.storage.data(), buf[static_cast<size_t>(b)], o.storage.size());
    outs.push_back(std::move(o));
  }
  writeSafetensors(argv[3], outs);
  for (void* p : owned) tfc_free(p);
  return 0;
}

// ---- serve: launcher --serve WEIGHTS ----

/** A framing error: the rest of the stream cannot be read as requests. */
struct Fatal : Error {
  using Error::Error;
};

struct HostInput {
  std::string name, dtype;
  std::vector<uint64_t> shape;
  std::vector<unsigned char> bytes;
};

struct Request {
  std::vector<std::pair<std::string, uint64_t>> dims;
  std::vector<HostInput> inputs;
  std::vector<std::pair<std::string, std::string>> device;
  std::vector<std::string> keep, fetch;
};

/** A device allocation of `capacity` bytes (capacities are powers of two, so a growing KV cache reallocates rarely). */
struct Block {
  void* p = nullptr;
  uint64_t capacity = 0;
};

struct Resident {
  Block block;
  std::string dtype;
  std::vector<uint64_t> shape;
};

class Server {
 public:
  Server(const ModelInfo& m, const File& weights) : m_(m), slots_(static_cast<size_t>(m.slotCount)) {
    weights_ = uploadWeights(m, weights, std::vector<uint64_t>(static_cast<size_t>(m.dimCount) + 1, 0));
  }

  /** Reads requests until EOF; returns the exit code. */
  int loop() {
    reply(std::string("{\"ok\":true,\"model\":") + jsonString(std::string(m_.model)) + ",\"h2d\":" + std::to_string(copiedToDevice) + ",\"d2h\":" + std::to_string(copiedToHost) + "}", {});
    for (;;) {
      std::string line;
      try {
        if (!readLine(line)) return 0;
        Request r = parse(line);  // Error: no payload consumed
        readPayloads(r);          // Fatal on unknown dtypes, huge sizes or EOF
        serve(r);
      } catch (const Fatal& e) {
        reply(std::string("{\"ok\":false,\"fatal\":true,\"error\":") + jsonString(e.what()) + "}", {});
        std::fprintf(stderr, "tfc launcher: %s\n", e.what());
        return 1;
      } catch (const std::exception& e) {
        reply(std::string("{\"ok\":false,\"error\":") + jsonString(e.what()) + "}", {});
      }
    }
  }

 private:
  const ModelInfo& m_;
  std::vector<void*> weights_;
  std::vector<Block> slots_;
  std::vector<Block> pool_;
  std::map<std::string, Resident> residents_;

  static void reply(const std::string& header, const std::vector<std::vector<unsigned char>>& payloads) {
    std::fwrite(header.data(), 1, header.size(), stdout);
    std::fputc('\n', stdout);
    for (const auto& p : payloads) std::fwrite(p.data(), 1, p.size(), stdout);
    if (std::fflush(stdout) != 0) fail("cannot write to stdout");
  }

  static bool readLine(std::string& line) {
    for (;;) {
      const int c = std::fgetc(stdin);
      if (c == EOF) {
        if (line.empty()) return false;
        throw Fatal("end of input inside a request header");
      }
      if (c == '\n') return true;
      if (line.size() >= (1u << 20)) throw Fatal("request header longer than 1 MiB");
      line += static_cast<char>(c);
    }
  }

  static Request parse(const std::string& line) {
    Request r;
    Json j(line, "bad request header");
    auto strings = [&](std::vector<std::string>& out) {
      j.expect('[');
      if (j.eat(']')) return;
      do out.push_back(j.str());
      while (j.eat(','));
      j.expect(']');
    };
    j.expect('{');
    if (!j.eat('}')) {
      do {
        const std::string key = j.str();
        j.expect(':');
        if (key == "dims") {
          j.expect('{');
          if (!j.eat('}')) {
            do {
              std::string name = j.str();
              j.expect(':');
              r.dims.emplace_back(name, j.uint());
            } while (j.eat(','));
            j.expect('}');
          }
        } else if (key == "inputs") {
          j.expect('[');
          if (!j.eat(']')) {
            do {
              HostInput in;
              bool hasShape = false;
              j.expect('{');
              do {
                const std::string k = j.str();
                j.expect(':');
                if (k == "name") in.name = j.str();
                else if (k == "dtype") in.dtype = j.str();
                else if (k == "shape") {
                  hasShape = true;
                  j.expect('[');
                  if (!j.eat(']')) {
                    do in.shape.push_back(j.uint());
                    while (j.eat(','));
                    j.expect(']');
                  }
                } else j.bad("unknown input field \"" + k + "\" (name, dtype, shape)");
              } while (j.eat(','));
              j.expect('}');
              if (in.name.empty() || in.dtype.empty() || !hasShape) j.bad("an input needs name, dtype and shape");
              r.inputs.push_back(std::move(in));
            } while (j.eat(','));
            j.expect(']');
          }
        } else if (key == "device") {
          j.expect('{');
          if (!j.eat('}')) {
            do {
              std::string name = j.str();
              j.expect(':');
              r.device.emplace_back(name, j.str());
            } while (j.eat(','));
            j.expect('}');
          }
        } else if (key == "keep") {
          strings(r.keep);
        } else if (key == "fetch") {
          strings(r.fetch);
        } else {
          j.bad("unknown field \"" + key + "\" (dims, inputs, device, keep, fetch)");
        }
      } while (j.eat(','));
      j.expect('}');
    }
    if (!j.done()) j.bad("trailing characters");
    return r;
  }

  static void readPayloads(Request& r) {
    for (HostInput& in : r.inputs) {
      const size_t size = fileDtypeBytes(in.dtype);
      if (size == 0) throw Fatal("input " + in.name + " has unsupported dtype " + in.dtype + " (F32 F16 BF16 F64 I32 I64 BOOL); its payload size is unknown");
      uint64_t bytes = size;
      for (uint64_t a : in.shape) {
        if (a != 0 && bytes > (uint64_t(1) << 40) / a) throw Fatal("input " + in.name + " of shape " + shapeText(in.shape) + " is over 1 TiB");
        bytes *= a;
      }
      in.bytes.resize(static_cast<size_t>(bytes));
      if (bytes > 0 && std::fread(in.bytes.data(), 1, in.bytes.size(), stdin) != in.bytes.size()) throw Fatal("end of input inside the payload of " + in.name);
    }
  }

  int inputIndex(const std::string& name) const {
    for (int b = 0; b < m_.bufferCount; b++) if (m_.buffers[b].kind == Kind::Input && name == m_.buffers[b].name) return b;
    return -1;
  }

  int outputIndex(const std::string& name) const {
    for (int k = 0; k < m_.outputCount; k++) if (name == m_.outputs[k].name) return k;
    return -1;
  }

  static bool dtypeFits(const std::string& file, const std::string& plan) {
    if (plan == "i32") return file == "I32" || file == "I64";
    if (plan == "bool") return file == "BOOL" || file == "I32";
    if (plan == "i8") return file == "I8" || file == "I32";  // I32: the serve protocol's integer tensors
    return file == "F32" || file == "F16" || file == "BF16" || file == "F64";
  }

  Block take(uint64_t bytes) {
    size_t best = pool_.size();
    for (size_t i = 0; i < pool_.size(); i++) if (pool_[i].capacity >= bytes && (best == pool_.size() || pool_[i].capacity < pool_[best].capacity)) best = i;
    if (best < pool_.size()) {
      Block b = pool_[best];
      pool_.erase(pool_.begin() + static_cast<std::ptrdiff_t>(best));
      return b;
    }
    uint64_t cap = 256;
    while (cap < bytes) cap *= 2;
    return Block{tfc_malloc(cap), cap};
  }

  /** Checks everything first (an error leaves the kept tensors as they were), then runs. */
  void serve(const Request& r) {
    const uint64_t h2d0 = copiedToDevice, d2h0 = copiedToHost;
    const size_t nd = static_cast<size_t>(m_.dimCount);
    std::vector<uint64_t> d(nd + 1, 0);
    std::vector<bool> bound(nd + 1, false);
    for (const auto& [name, value] : r.dims) {
      int i = 0;
      while (i < m_.dimCount && name != m_.dimNames[i]) i++;
      if (i == m_.dimCount) throw Error("unknown dim " + name);
      if (value > 0x7fffffffu) throw Error("dim " + name + " = " + std::to_string(value) + " is over 2^31 - 1");
      d[static_cast<size_t>(i)] = value, bound[static_cast<size_t>(i)] = true;
    }
    // Where each plan input comes from: a host tensor of this request or a kept device tensor.
    std::vector<const HostInput*> host(static_cast<size_t>(m_.bufferCount), nullptr);
    std::vector<const Resident*> dev(static_cast<size_t>(m_.bufferCount), nullptr);
    for (const HostInput& in : r.inputs) {
      const int b = inputIndex(in.name);
      if (b < 0) throw Error("model " + std::string(m_.model) + " has no input " + in.name);
      if (host[static_cast<size_t>(b)] != nullptr) throw Error("input " + in.name + " is given twice");
      if (!dtypeFits(in.dtype, m_.buffers[b].dtype)) throw Error("input " + in.name + " is " + in.dtype + ", the model declares " + m_.buffers[b].dtype);
      host[static_cast<size_t>(b)] = &in;
    }
    for (const auto& [name, kept] : r.device) {
      const int b = inputIndex(name);
      if (b < 0) throw Error("model " + std::string(m_.model) + " has no input " + name);
      if (host[static_cast<size_t>(b)] != nullptr || dev[static_cast<size_t>(b)] != nullptr) throw Error("input " + name + " is given twice");
      auto it = residents_.find(kept);
      if (it == residents_.end()) throw Error("no kept device tensor " + kept + " (keep it in the previous request)");
      if (it->second.dtype != m_.buffers[b].dtype) throw Error("kept tensor " + kept + " is " + it->second.dtype + ", input " + name + " is " + m_.buffers[b].dtype);
      dev[static_cast<size_t>(b)] = &it->second;
    }
    for (int b = 0; b < m_.bufferCount; b++) {
      const BufferInfo& info = m_.buffers[b];
      if (info.kind != Kind::Input) continue;
      const std::vector<uint64_t>* s = host[static_cast<size_t>(b)] != nullptr ? &host[static_cast<size_t>(b)]->shape : dev[static_cast<size_t>(b)] != nullptr ? &dev[static_cast<size_t>(b)]->shape : nullptr;
      if (s == nullptr) throw Error("input " + std::string(info.name) + " is missing (give it in \"inputs\" or \"device\")");
      if (s->size() != static_cast<size_t>(info.rank)) continue;  // reported below
      for (int i = 0; i < info.rank; i++) {
        const int di = info.axisDims[i];
        if (di >= 0 && !bound[static_cast<size_t>(di)]) d[static_cast<size_t>(di)] = (*s)[static_cast<size_t>(i)], bound[static_cast<size_t>(di)] = true;
      }
    }
    for (size_t i = 0; i < nd; i++) if (!bound[i]) throw Error("dim " + std::string(m_.dimNames[i]) + " is not bound (give it in \"dims\")");
    for (int b = 0; b < m_.bufferCount; b++) {
      const BufferInfo& info = m_.buffers[b];
      if (info.kind != Kind::Input) continue;
      const std::vector<uint64_t>& s = host[static_cast<size_t>(b)] != nullptr ? host[static_cast<size_t>(b)]->shape : dev[static_cast<size_t>(b)]->shape;
      const std::vector<uint64_t> want = shapeOf(m_, b, d);
      if (s != want) throw Error("input " + std::string(info.name) + " has shape " + shapeText(s) + ", the dims give " + shapeText(want));
    }
    std::vector<int> keepBuffers;
    for (const std::string& name : r.keep) {
      const int k = outputIndex(name);
      if (k < 0) throw Error("model " + std::string(m_.model) + " has no output " + name);
      const int b = m_.outputs[k].buffer;
      if (m_.buffers[b].kind != Kind::Output) throw Error("output " + name + " is an input or weight of the model, not a buffer of its own: it cannot be kept");
      for (int other : keepBuffers) if (other == b) throw Error("output " + name + " shares its buffer with another kept output");
      keepBuffers.push_back(b);
    }
    for (const std::string& name : r.fetch) if (outputIndex(name) < 0) throw Error("model " + std::string(m_.model) + " has no output " + name);

    // Memory: weights stay; temps in their slots (grown as needed); inputs and outputs from the pool.
    std::vector<void*> buf(static_cast<size_t>(m_.bufferCount) + 1, nullptr);
    std::vector<Block> blockOf(static_cast<size_t>(m_.bufferCount));
    std::vector<uint64_t> slotBytes(static_cast<size_t>(m_.slotCount), 0);
    for (int b = 0; b < m_.bufferCount; b++) {
      const BufferInfo& info = m_.buffers[b];
      if (info.kind == Kind::Temp) slotBytes[static_cast<size_t>(info.slot)] = umax(slotBytes[static_cast<size_t>(info.slot)], m_.elements(b, d.data()) * elementBytes(info));
    }
    for (int s = 0; s < m_.slotCount; s++) {
      Block& blk = slots_[static_cast<size_t>(s)];
      if (blk.capacity < slotBytes[static_cast<size_t>(s)] || blk.p == nullptr) {
        if (blk.p != nullptr) pool_.push_back(blk);
        blk = take(slotBytes[static_cast<size_t>(s)]);
      }
    }
    for (int b = 0; b < m_.bufferCount; b++) {
      const BufferInfo& info = m_.buffers[b];
      const size_t bi = static_cast<size_t>(b);
      if (info.kind == Kind::Weight) buf[bi] = weights_[bi];
      else if (info.kind == Kind::Temp) buf[bi] = slots_[static_cast<size_t>(info.slot)].p;
      else if (info.kind == Kind::Input && dev[bi] != nullptr) buf[bi] = dev[bi]->block.p;
      else {
        const uint64_t n = m_.elements(b, d.data());
        blockOf[bi] = take(n * elementBytes(info));
        buf[bi] = blockOf[bi].p;
        if (info.kind == Kind::Input) {
          Tensor t{host[bi]->dtype, host[bi]->shape, host[bi]->bytes.data(), host[bi]->bytes.size()};
          const std::vector<unsigned char> v = encode(t, info.dtype, 0, n);
          tfc_memcpy_h2d(buf[bi], v.data(), v.size());
        }
      }
    }
    Timer timer;
    m_.run(buf.data(), d.data());
    const double ms = timer.stopMs();
    tfc_sync();

    std::string header = "{\"ok\":true,\"outputs\":[";
    std::vector<std::vector<unsigned char>> payloads;
    for (size_t f = 0; f < r.fetch.size(); f++) {
      const OutputInfo& out = m_.outputs[outputIndex(r.fetch[f])];
      Output o{std::string(out.name), m_.buffers[out.buffer].dtype, shapeOf(m_, out.buffer, d), {}};
      o.storage.resize(m_.elements(out.buffer, d.data()) * elementBytes(m_.buffers[out.buffer]));
      tfc_memcpy_d2h(o.storage.data(), buf[static_cast<size_t>(out.buffer)], o.storage.size());
      payloads.push_back(fileData(o));
      header += std::string(f > 0 ? "," : "") + "{\"name\":" + jsonString(o.name) + ",\"dtype\":\"" + fileDtypeOf(o.dtype) + "\",\"shape\":" + shapeText(o.shape) + "}";
    }
    // The old kept tensors are free now; this request's kept outputs take their place.
    for (auto& [name, res] : residents_) pool_.push_back(res.block);
    residents_.clear();
    for (const std::string& name : r.keep) {
      const int b = m_.outputs[outputIndex(name)].buffer;
      Resident res{blockOf[static_cast<size_t>(b)], m_.buffers[b].dtype, shapeOf(m_, b, d)};
      blockOf[static_cast<size_t>(b)] = Block{};
      residents_[name] = res;
    }
    for (const Block& blk : blockOf) if (blk.p != nullptr) pool_.push_back(blk);
    char msText[32];
    std::snprintf(msText, sizeof msText, "%.6f", ms);
    header += "],\"h2d\":" + std::to_string(copiedToDevice - h2d0) + ",\"d2h\":" + std::to_string(copiedToHost - d2h0) + ",\"ms\":" + msText + "}";
    reply(header, payloads);
  }
};

inline int launcherMain(const ModelInfo& m, int argc, char** argv) {
  try {
    if (argc >= 2 && std::strcmp(argv[1], "--serve") == 0) {
      if (argc != 3) fail("usage: launcher --serve WEIGHTS.safetensors (requests on stdin; see tfc_launcher.h)");
      const File weights = readSafetensors(argv[2]);
      Server server(m, weights);
      return server.loop();
    }
    return runOnce(m, argc, argv);
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

}  // namespace tfc

#endif
