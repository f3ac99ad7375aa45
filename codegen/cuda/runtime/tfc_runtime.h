// Host runtime for the generated CUDA launcher (codegen/cuda/launcher.ts -> cuda/launcher.cu):
// a small safetensors reader/writer, dtype conversion into the plan's storage types, and the tiny
// device API the launcher uses (tfc_malloc, tfc_free, tfc_memcpy_h2d/d2h, TFC_LAUNCH, tfc_sync).
// Every host<->device copy goes through tfc_memcpy_h2d/d2h, which count their bytes (copiedToDevice,
// copiedToHost): the serve mode (tfc_launcher.h) reports them per request.
// Under nvcc the API is the CUDA runtime API; under g++ with codegen/cuda/emu/cuda_emu.h included
// first (TFC_CUDA_EMU) device memory is host memory and launches run on the CPU emulator.
#ifndef TFC_RUNTIME_H
#define TFC_RUNTIME_H

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef TFC_CUDA_EMU
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

namespace tfc {

/** Fatal: the message on stderr, exit 1 (device errors, unreadable files). */
[[noreturn]] inline void fail(const std::string& msg) {
  std::fprintf(stderr, "tfc launcher: %s\n", msg.c_str());
  std::exit(1);
}

/** A recoverable mistake in what the launcher was given (a bad header, a shape): thrown, not exited. */
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/** Bytes copied host -> device and device -> host so far (every copy goes through tfc_memcpy_*). */
inline uint64_t copiedToDevice = 0;
inline uint64_t copiedToHost = 0;

// ---- device API ----
#ifdef TFC_CUDA_EMU
inline void* tfc_malloc(size_t bytes) {
  void* p = std::calloc(bytes + 16, 1);  // + 16: a zero-size buffer still has an address
  if (p == nullptr) fail("out of host memory");
  return p;
}
inline void tfc_free(void* p) { std::free(p); }
inline void tfc_memcpy_h2d(void* dst, const void* src, size_t bytes) {
  copiedToDevice += bytes;
  std::memcpy(dst, src, bytes);
}
inline void tfc_memcpy_d2h(void* dst, const void* src, size_t bytes) {
  copiedToHost += bytes;
  std::memcpy(dst, src, bytes);
}
inline void tfc_sync() {}
/** Untyped device pointer: converts to the kernel parameter's element pointer type. */
using Ptr = tfc_emu::AnyPtr;
#define TFC_LAUNCH(kernel, grid, block, ...) tfc_emu::launch(grid, block, [&] { kernel(__VA_ARGS__); })
#else
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(std::string(what) + ": " + cudaGetErrorString(e));
}
inline void* tfc_malloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes + 16), "cudaMalloc");
  check(cudaMemset(p, 0, bytes + 16), "cudaMemset");
  return p;
}
inline void tfc_free(void* p) { check(cudaFree(p), "cudaFree"); }
inline void tfc_memcpy_h2d(void* dst, const void* src, size_t bytes) {
  copiedToDevice += bytes;
  if (bytes > 0) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}
inline void tfc_memcpy_d2h(void* dst, const void* src, size_t bytes) {
  copiedToHost += bytes;
  if (bytes > 0) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}
inline void tfc_sync() { check(cudaDeviceSynchronize(), "kernel"); }
struct Ptr {
  void* p;
  template <typename T>
  operator T*() const {
    return static_cast<T*>(p);
  }
};
#define TFC_LAUNCH(kernel, grid, block, ...)                          \
  do {                                                                \
    kernel<<<grid, block>>>(__VA_ARGS__);                             \
    tfc::check(cudaGetLastError(), "launch of " #kernel);             \
  } while (0)
#endif

/** Wall time of device work from construction to stopMs (cudaEvents on a GPU; the CPU clock in the emulator). */
#ifdef TFC_CUDA_EMU
struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double stopMs() { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); }
};
#else
struct Timer {
  cudaEvent_t a{}, b{};
  Timer() {
    check(cudaEventCreate(&a), "cudaEventCreate");
    check(cudaEventCreate(&b), "cudaEventCreate");
    check(cudaEventRecord(a), "cudaEventRecord");
  }
  double stopMs() {
    check(cudaEventRecord(b), "cudaEventRecord");
    check(cudaEventSynchronize(b), "kernel");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    return ms;
  }
};
#endif

// ---- size formulas (the plan's SizeExpr) ----
inline uint64_t cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
inline uint64_t umax(uint64_t a, uint64_t b) { return a > b ? a : b; }

// ---- safetensors ----
struct Tensor {
  std::string dtype;  // F32 F16 BF16 F64 I32 I64 BOOL
  std::vector<uint64_t> shape;
  const unsigned char* data = nullptr;
  size_t bytes = 0;
};

struct File {
  std::string path;
  std::vector<unsigned char> bytes;
  std::map<std::string, Tensor> tensors;
};

/**
 * A minimal JSON reader for safetensors headers and serve requests (objects, arrays, strings,
 * unsigned integers); a syntax error throws Error("<context> at byte N: what").
 */
class Json {
 public:
  Json(const std::string& text, const std::string& context) : s_(text), context_(context) {}
  bool peek(char c) {
    ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) i_++;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      i_++;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) bad(std::string("expected '") + c + "'");
  }
  std::string str() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c == '\\') {
        if (i_ >= s_.size()) bad("bad escape");
        char e = s_[i_++];
        if (e == 'u') {
          if (i_ + 4 > s_.size() || s_.find_first_not_of("0123456789abcdefABCDEF", i_) < i_ + 4) bad("bad escape");
          unsigned cp = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
          i_ += 4;
          // Names are compared as UTF-8; surrogate pairs are rare in tensor names and kept as is.
          if (cp < 0x80) out += static_cast<char>(cp);
          else if (cp < 0x800) out += static_cast<char>(0xc0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3f));
          else out += static_cast<char>(0xe0 | (cp >> 12)), out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)), out += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
          out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
        }
      } else {
        out += c;
      }
    }
    expect('"');
    return out;
  }
  uint64_t uint() {
    ws();
    size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') i_++;
    if (start == i_) bad("expected an integer");
    if (i_ - start > 19) bad("integer out of range");
    return std::stoull(s_.substr(start, i_ - start));
  }
  void skip() {
    ws();
    if (i_ >= s_.size()) bad("unexpected end");
    char c = s_[i_];
    if (c == '"') {
      str();
    } else if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      i_++;
      if (eat(close)) return;
      do {
        if (c == '{') {
          str();
          expect(':');
        }
        skip();
      } while (eat(','));
      expect(close);
    } else {
      while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']') i_++;
    }
  }
  [[noreturn]] void bad(const std::string& what) { throw Error(context_ + " at byte " + std::to_string(i_) + ": " + what); }
  bool done() {
    ws();
    return i_ == s_.size();
  }

 private:
  const std::string& s_;
  std::string context_;
  size_t i_ = 0;
};

inline size_t fileDtypeBytes(const std::string& d) {
  if (d == "F32" || d == "I32") return 4;
  if (d == "F16" || d == "BF16") return 2;
  if (d == "F64" || d == "I64") return 8;
  if (d == "BOOL" || d == "I8") return 1;
  return 0;
}

/** Bytes per element of a plan dtype on the device (src/kernel/ir/storage.ts). */
inline size_t storageBytes(const std::string& planDtype) {
  if (planDtype == "f16") return 2;
  if (planDtype == "i8") return 1;
  return 4;
}

inline File readSafetensors(const std::string& path) {
  File f;
  f.path = path;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open " + path);
  f.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (f.bytes.size() < 8) fail(path + ": not a safetensors file (shorter than 8 bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | f.bytes[static_cast<size_t>(i)];
  if (n > f.bytes.size() - 8) fail(path + ": header length past the end of the file");
  const std::string text(reinterpret_cast<const char*>(f.bytes.data() + 8), static_cast<size_t>(n));
  const size_t dataStart = 8 + static_cast<size_t>(n);
  Json j(text, path + ": bad safetensors header");
  j.expect('{');
  if (!j.eat('}')) {
    do {
      std::string name = j.str();
      j.expect(':');
      if (name == "__metadata__") {
        j.skip();
        continue;
      }
      Tensor t;
      uint64_t begin = 0, end = 0;
      j.expect('{');
      do {
        std::string key = j.str();
        j.expect(':');
        if (key == "dtype") {
          t.dtype = j.str();
        } else if (key == "shape") {
          j.expect('[');
          if (!j.eat(']')) {
            do t.shape.push_back(j.uint());
            while (j.eat(','));
            j.expect(']');
          }
        } else if (key == "data_offsets") {
          j.expect('[');
          begin = j.uint();
          j.expect(',');
          end = j.uint();
          j.expect(']');
        } else {
          j.skip();
        }
      } while (j.eat(','));
      j.expect('}');
      uint64_t numel = 1;
      for (uint64_t d : t.shape) numel *= d;
      const size_t size = fileDtypeBytes(t.dtype);
      if (size == 0) fail(path + ": tensor " + name + " has unsupported dtype " + t.dtype);
      if (end < begin || end - begin != numel * size || dataStart + end > f.bytes.size()) fail(path + ": tensor " + name + " has bad data_offsets");
      t.data = f.bytes.data() + dataStart + begin;
      t.bytes = static_cast<size_t>(end - begin);
      f.tensors[name] = t;
    } while (j.eat(','));
    j.expect('}');
  }
  if (!j.done()) j.bad("trailing characters");
  return f;
}

inline float halfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t bits;
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (e == 31) bits = sign | 0x7f800000u | (m << 13);
  else bits = sign | ((e + 112u) << 23) | (m << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/** binary16 bits of `f`, round to nearest even (as src/runtime/convert.ts). */
inline uint16_t floatToHalfBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (absx < 0x38800000u) {
    float a;
    std::memcpy(&a, &absx, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  }
  const uint32_t mant = absx & 0x7fffffu;
  uint32_t h = ((absx >> 23) - 112u) << 10 | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
  return static_cast<uint16_t>(sign | h);
}

/** Element i of a file tensor as a double (any dtype). */
inline double elementAt(const Tensor& t, size_t i) {
  const unsigned char* p = t.data + i * fileDtypeBytes(t.dtype);
  if (t.dtype == "F32") { float v; std::memcpy(&v, p, 4); return v; }
  if (t.dtype == "F64") { double v; std::memcpy(&v, p, 8); return v; }
  if (t.dtype == "I32") { int32_t v; std::memcpy(&v, p, 4); return v; }
  if (t.dtype == "I64") { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
  if (t.dtype == "BOOL") return *p != 0 ? 1 : 0;
  if (t.dtype == "I8") return static_cast<int8_t>(*p);
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (t.dtype == "F16") return halfBitsToFloat(h);
  uint32_t bits = static_cast<uint32_t>(h) << 16;  // BF16
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

/**
 * Elements [first, first + count) of `t` in the plan's storage encoding of `dtype`
 * (src/kernel/ir/storage.ts): f32 and bf16 as float (bf16 rounded), f16 as binary16, i32 as int32,
 * i8 as int8, bool as u32 0/1.
 */
inline std::vector<unsigned char> encode(const Tensor& t, const std::string& dtype, size_t first, size_t count) {
  const size_t size = storageBytes(dtype);
  std::vector<unsigned char> out(count * size);
  // Same encoding in the file and on the device: a copy (the bench's 0.8 GB f16 inputs).
  if ((dtype == "f32" && t.dtype == "F32") || (dtype == "f16" && t.dtype == "F16") || (dtype == "i32" && t.dtype == "I32") || (dtype == "i8" && t.dtype == "I8")) {
    if (count > 0) std::memcpy(out.data(), t.data + first * size, count * size);
    return out;
  }
  for (size_t i = 0; i < count; i++) {
    const double v = elementAt(t, first + i);
    unsigned char* p = out.data() + i * size;
    if (dtype == "f32") {
      const float f = static_cast<float>(v);
      std::memcpy(p, &f, 4);
    } else if (dtype == "bf16") {
      float f = static_cast<float>(v);
      uint32_t b;
      std::memcpy(&b, &f, 4);
      if ((b & 0x7fffffffu) <= 0x7f800000u) b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
      std::memcpy(p, &b, 4);
    } else if (dtype == "f16") {
      const uint16_t h = floatToHalfBits(static_cast<float>(v));
      std::memcpy(p, &h, 2);
    } else if (dtype == "i32") {
      const int32_t x = static_cast<int32_t>(v);
      std::memcpy(p, &x, 4);
    } else if (dtype == "i8") {
      const int8_t x = static_cast<int8_t>(v < -128 ? -128 : v > 127 ? 127 : v);
      std::memcpy(p, &x, 1);
    } else {
      const uint32_t x = v != 0 ? 1u : 0u;
      std::memcpy(p, &x, 4);
    }
  }
  return out;
}

struct Output {
  std::string name;
  std::string dtype;  // plan dtype: floats are written as F32, i32, i8 and bool as I32
  std::vector<uint64_t> shape;
  std::vector<unsigned char> storage;  // as read back from the device
};

/** `s` as a JSON string literal (names come from the model: quotes, backslashes, control bytes escaped). */
inline std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20) {
      char u[8];
      std::snprintf(u, sizeof u, "\\u%04x", c);
      out += u;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

/** The file dtype an output is written as: floats F32, i32, i8 and bool I32. */
inline const char* fileDtypeOf(const std::string& planDtype) { return planDtype == "f32" || planDtype == "f16" || planDtype == "bf16" ? "F32" : "I32"; }

/** An output's values as written to files and serve responses: 4 bytes each (f16 widened to f32, i8 to int32). */
inline std::vector<unsigned char> fileData(const Output& o) {
  uint64_t numel = 1;
  for (uint64_t d : o.shape) numel *= d;
  std::vector<unsigned char> data(static_cast<size_t>(numel) * 4);
  for (size_t i = 0; i < numel; i++) {
    if (o.dtype == "f16") {
      uint16_t h;
      std::memcpy(&h, o.storage.data() + i * 2, 2);
      const float f = halfBitsToFloat(h);
      std::memcpy(data.data() + i * 4, &f, 4);
    } else if (o.dtype == "i8") {
      const int32_t x = static_cast<int8_t>(o.storage[i]);
      std::memcpy(data.data() + i * 4, &x, 4);
    } else {
      std::memcpy(data.data() + i * 4, o.storage.data() + i * 4, 4);  // f32, bf16 (as f32), i32, bool (u32 0/1 = I32)
    }
  }
  return data;
}

inline void writeSafetensors(const std::string& path, const std::vector<Output>& outs) {
  std::string header = "{";
  std::vector<std::vector<unsigned char>> datas;
  uint64_t offset = 0;
  for (size_t k = 0; k < outs.size(); k++) {
    const Output& o = outs[k];
    std::vector<unsigned char> data = fileData(o);
    if (k > 0) header += ",";
    header += jsonString(o.name) + ":{\"dtype\":\"" + fileDtypeOf(o.dtype) + "\",\"shape\":[";
    for (size_t d = 0; d < o.shape.size(); d++) header += (d > 0 ? "," : "") + std::to_string(o.shape[d]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + data.size()) + "]}";
    offset += data.size();
    datas.push_back(std::move(data));
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += " ";
  std::ofstream out(path, std::ios::binary);
  if (!out) fail("cannot write " + path);
  uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = static_cast<unsigned char>(n >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& d : datas) out.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
  if (!out) fail("cannot write " + path);
}

/** A tensor of `file` checked against the expected dtype class and element count. */
inline const Tensor& tensorOf(const File& f, const std::string& name, uint64_t elements) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) fail(f.path + ": tensor " + name + " is missing");
  uint64_t numel = 1;
  for (uint64_t d : it->second.shape) numel *= d;
  if (numel != elements) fail(f.path + ": tensor " + name + " has " + std::to_string(numel) + " elements, the plan needs " + std::to_string(elements));
  return it->second;
}

}  // namespace tfc

#endif
