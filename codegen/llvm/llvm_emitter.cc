#include "codegen/llvm/llvm_emitter.h"

#include <llvm/ADT/StringExtras.h>
#include <llvm/Analysis/TargetLibraryInfo.h>
#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/DiagnosticInfo.h>
#include <llvm/IR/DiagnosticPrinter.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/DynamicLibrary.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "codegen/host_tools.h"
#include "codegen/llvm/kir_to_llvm.h"
#include "runtime/error.h"

namespace kiln {
namespace {

constexpr size_t kMaxCompileThreads = 16;

void InitializeLlvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

const llvm::Target& LookupTarget(const std::string& triple) {
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (target == nullptr) throw Error("LLVM has no target for " + triple + ": " + error);
  return *target;
}

// The closest of `candidates` to `name`, for "did you mean" hints; empty when none is close.
template <typename Range>
std::string Closest(llvm::StringRef name, const Range& candidates) {
  std::string best;
  unsigned best_distance = 3;
  for (const auto& candidate : candidates) {
    const unsigned distance = name.edit_distance(candidate.Key, true, best_distance);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate.Key;
    }
  }
  return best.empty() ? "" : "; did you mean '" + best + "'?";
}

llvm::CodeGenOptLevel CodegenLevel(int opt_level) {
  switch (opt_level) {
    case 0: return llvm::CodeGenOptLevel::None;
    case 1: return llvm::CodeGenOptLevel::Less;
    case 2: return llvm::CodeGenOptLevel::Default;
    default: return llvm::CodeGenOptLevel::Aggressive;
  }
}

constexpr const char* kLibmvec = "libmvec.so.1";

// glibc's vector math library gives the vectorizer exp, log and pow on 4 and 8 lanes.
// Only with AVX2: LLVM may call its 8-lane AVX2 variants whatever vector width it plans.
// Loaded into the process (once, for good) so that JIT code can call it.
bool UseLibmvec(const ResolvedTarget& target) {
  static const bool loaded = llvm::sys::DynamicLibrary::getPermanentLibrary(kLibmvec).isValid();
  return loaded && llvm::Triple(target.triple).getArch() == llvm::Triple::x86_64 &&
         std::binary_search(target.features.begin(), target.features.end(), "avx2");
}

// Errors the backend reports through the context (warnings and remarks, such as "loop not
// vectorized", are dropped); checked after each phase.
struct Diagnostics {
  std::string errors;

  static void Handle(const llvm::DiagnosticInfo* info, void* self) {
    if (info->getSeverity() != llvm::DS_Error) return;
    std::string text;
    llvm::raw_string_ostream out(text);
    llvm::DiagnosticPrinterRawOStream printer(out);
    info->print(printer);
    static_cast<Diagnostics*>(self)->errors += out.str() + "\n";
  }

  void Check(const char* phase) const {
    if (!errors.empty()) throw Error(std::string("LLVM failed while ") + phase + ": " + errors);
  }
};

// An optimized module and what made it. Members are destroyed bottom-up: the module
// before its context, the context before the diagnostics it reports to.
struct Compilation {
  ResolvedTarget target;
  int opt_level = 2;
  bool libmvec = false;
  std::unique_ptr<Diagnostics> diagnostics = std::make_unique<Diagnostics>();
  std::unique_ptr<llvm::LLVMContext> context = std::make_unique<llvm::LLVMContext>();
  std::unique_ptr<llvm::TargetMachine> machine;
  std::unique_ptr<llvm::Module> module;
};

std::unique_ptr<llvm::TargetMachine> MakeTargetMachine(const ResolvedTarget& target, int opt_level) {
  const llvm::TargetOptions options;  // IEEE floats, no FMA contraction: results match the interpreter
  std::unique_ptr<llvm::TargetMachine> machine(
      LookupTarget(target.triple)
          .createTargetMachine(target.triple, target.cpu, target.feature_string, options, llvm::Reloc::PIC_,
                               llvm::CodeModel::Small, CodegenLevel(opt_level)));
  if (!machine) throw Error("LLVM cannot make a target machine for " + target.triple + " cpu " + target.cpu);
  return machine;
}

// LLVM's default pipeline for the level, with the target's cost model (TTI) so that
// loops vectorize for the chosen CPU.
void Optimize(llvm::Module& module, llvm::TargetMachine& machine, int opt_level, bool libmvec) {
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = opt_level >= 2;  // below O2 only kVectorize loops (forced)
  tuning.SLPVectorization = opt_level >= 2;
  tuning.LoopInterleaving = opt_level >= 2;
  tuning.LoopUnrolling = opt_level >= 2;
  llvm::LoopAnalysisManager loops;
  llvm::FunctionAnalysisManager functions;
  llvm::CGSCCAnalysisManager cgsccs;
  llvm::ModuleAnalysisManager modules;
  llvm::TargetLibraryInfoImpl library{llvm::Triple(module.getTargetTriple())};
  if (libmvec)
    library.addVectorizableFunctionsFromVecLib(llvm::TargetLibraryInfoImpl::LIBMVEC_X86, machine.getTargetTriple());
  functions.registerPass([&] { return llvm::TargetLibraryAnalysis(library); });  // before the defaults
  llvm::PassBuilder builder(&machine, tuning);
  builder.registerModuleAnalyses(modules);
  builder.registerCGSCCAnalyses(cgsccs);
  builder.registerFunctionAnalyses(functions);
  builder.registerLoopAnalyses(loops);
  builder.crossRegisterProxies(loops, functions, cgsccs, modules);
  static const llvm::OptimizationLevel kLevels[] = {llvm::OptimizationLevel::O1, llvm::OptimizationLevel::O2,
                                                    llvm::OptimizationLevel::O3};
  llvm::ModulePassManager pipeline = opt_level == 0 ? builder.buildO0DefaultPipeline(llvm::OptimizationLevel::O0)
                                                    : builder.buildPerModuleDefaultPipeline(kLevels[opt_level - 1]);
  pipeline.run(module, modules);
}

Compilation Compile(const std::vector<kir::Kernel>& kernels, const CpuTarget& cpu) {
  Compilation c;
  c.target = ResolveTarget(cpu);
  c.opt_level = cpu.opt_level;
  c.libmvec = UseLibmvec(c.target);
  c.context->setDiagnosticHandlerCallBack(&Diagnostics::Handle, c.diagnostics.get());
  c.machine = MakeTargetMachine(c.target, c.opt_level);
  c.module = llvm_codegen::BuildModule(kernels, *c.machine, *c.context);
  Optimize(*c.module, *c.machine, c.opt_level, c.libmvec);
  c.diagnostics->Check("optimizing");
  return c;
}

std::string EmitFile(Compilation& c, llvm::CodeGenFileType type) {
  llvm::SmallVector<char, 0> bytes;
  llvm::raw_svector_ostream out(bytes);
  llvm::legacy::PassManager passes;
  if (c.machine->addPassesToEmitFile(passes, out, nullptr, type)) {
    throw Error("LLVM cannot emit " + std::string(type == llvm::CodeGenFileType::ObjectFile ? "objects" : "assembly") +
                " for " + c.target.triple);
  }
  passes.run(*c.module);
  c.diagnostics->Check("generating code");
  return std::string(bytes.data(), bytes.size());
}

// ---- JIT ----

// libm functions the code may call (directly, or through intrinsics the backend expands
// to calls), bound to this process's own: they resolve even where the process's
// symbols are not visible to the JIT (a statically linked libm).
void DefineLibm(llvm::orc::LLJIT& jit) {
  llvm::orc::SymbolMap symbols;
  const auto add = [&](const char* name, auto* function) {
    symbols[jit.mangleAndIntern(name)] = {llvm::orc::ExecutorAddr::fromPtr(function),
                                          llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable};
  };
  using F = float (*)(float);
  using D = double (*)(double);
  using F2 = float (*)(float, float);
  using D2 = double (*)(double, double);
  add("expf", static_cast<F>(::expf));
  add("exp", static_cast<D>(::exp));
  add("logf", static_cast<F>(::logf));
  add("log", static_cast<D>(::log));
  add("sqrtf", static_cast<F>(::sqrtf));
  add("sqrt", static_cast<D>(::sqrt));
  add("tanhf", static_cast<F>(::tanhf));
  add("tanh", static_cast<D>(::tanh));
  add("erff", static_cast<F>(::erff));
  add("erf", static_cast<D>(::erf));
  add("floorf", static_cast<F>(::floorf));
  add("floor", static_cast<D>(::floor));
  add("ceilf", static_cast<F>(::ceilf));
  add("ceil", static_cast<D>(::ceil));
  add("roundf", static_cast<F>(::roundf));
  add("round", static_cast<D>(::round));
  add("powf", static_cast<F2>(::powf));
  add("pow", static_cast<D2>(::pow));
  add("fmodf", static_cast<F2>(::fmodf));
  add("fmod", static_cast<D2>(::fmod));
  if (auto error = jit.getMainJITDylib().define(llvm::orc::absoluteSymbols(std::move(symbols)))) {
    throw Error("cannot give the JIT libm: " + llvm::toString(std::move(error)));
  }
}

class JitModule final : public CodeModule {
 public:
  struct Entry {
    KilnKernelFn fn = nullptr;
    const int64_t* abi_record = nullptr;
  };
  JitModule(std::unique_ptr<Diagnostics> diagnostics, std::unique_ptr<llvm::orc::LLJIT> jit,
            std::unordered_map<std::string, Entry> kernels)
      : diagnostics_(std::move(diagnostics)), jit_(std::move(jit)), kernels_(std::move(kernels)) {}

  KilnKernelFn Find(const std::string& name) const override {
    const auto it = kernels_.find(name);
    return it == kernels_.end() ? nullptr : it->second.fn;
  }
  const int64_t* FindAbiRecord(const std::string& name) const override {
    const auto it = kernels_.find(name);
    return it == kernels_.end() ? nullptr : it->second.abi_record;
  }

 private:
  std::unique_ptr<Diagnostics> diagnostics_;  // the JIT's context reports here
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  std::unordered_map<std::string, Entry> kernels_;  // read-only after construction
};

// ---- shared objects ----

std::string LinkSharedObject(const std::vector<std::string>& objects, bool libmvec) {
  const TempDir dir("linking the kernels");
  const std::string library_path = dir.File("kernels.so");
  const std::string log_path = dir.File("link.log");
  std::vector<std::string> object_paths;
  for (size_t i = 0; i < objects.size(); ++i) {
    object_paths.push_back(dir.File("kernels" + std::to_string(i) + ".o"));
    WriteBytes(object_paths.back(), objects[i]);
  }
  for (const char* driver : {"cc", "gcc"}) {
    // --no-undefined: a symbol nothing provides is an error now, not at load time;
    // --as-needed: libraries the code does not call are not recorded.
    std::vector<std::string> argv = {driver, "-shared", "-o", library_path};
    argv.insert(argv.end(), object_paths.begin(), object_paths.end());
    argv.insert(argv.end(), {"-Wl,--no-undefined", "-Wl,--as-needed"});
    if (libmvec) argv.emplace_back("-lmvec");
    argv.emplace_back("-lm");
    const int status = RunProcess(argv, log_path);
    if (status < 0) continue;
    if (status != 0) {
      throw Error("linking the kernels into a shared object failed: `" + CommandLine(argv) + "` exited with status " +
                  std::to_string(status) + ":\n" + ReadBytes(log_path));
    }
    return ReadBytes(library_path);
  }
  throw Error("no C compiler driver (cc or gcc) on PATH to link the kernels into a shared object; install gcc");
}

}  // namespace

ResolvedTarget ResolveTarget(const CpuTarget& cpu) {
  InitializeLlvm();
  if (cpu.opt_level < 0 || cpu.opt_level > 3) {
    throw Error("opt_level must be 0, 1, 2 or 3, given " + std::to_string(cpu.opt_level));
  }
  ResolvedTarget out;
  out.triple = llvm::Triple::normalize(llvm::sys::getProcessTriple());
  const llvm::Target& target = LookupTarget(out.triple);
  const std::unique_ptr<llvm::MCSubtargetInfo> tables(target.createMCSubtargetInfo(out.triple, "", ""));
  std::vector<std::string> features;
  if (cpu.cpu == "host") {
    out.cpu = llvm::sys::getHostCPUName().str();
    for (const auto& feature : llvm::sys::getHostCPUFeatures()) {
      features.push_back((feature.second ? "+" : "-") + feature.first().str());
    }
    std::sort(features.begin(), features.end());  // the map's order is not stable
  } else {
    if (!tables->isCPUStringValid(cpu.cpu)) {
      throw Error("unknown CPU '" + cpu.cpu + "' for " + out.triple +
                  Closest(cpu.cpu, tables->getAllProcessorDescriptions()) +
                  " (use \"host\" or an LLVM CPU name such as x86-64, x86-64-v2, x86-64-v3, x86-64-v4, skylake)");
    }
    out.cpu = cpu.cpu;
  }
  // Explicit features come last, so that they override the CPU's.
  llvm::SmallVector<llvm::StringRef, 8> items;
  llvm::StringRef(cpu.features).split(items, ',');
  for (const llvm::StringRef raw : items) {
    const std::string item = raw.trim().str();
    if (item.empty()) continue;
    if (item.size() < 2 || (item[0] != '+' && item[0] != '-')) {
      throw Error("bad CPU feature '" + item + "' in \"" + cpu.features +
                  "\": features are +name or -name, comma-separated (e.g. +avx2,+fma)");
    }
    const llvm::StringRef name = llvm::StringRef(item).drop_front();
    const auto known = tables->getAllProcessorFeatures();
    if (std::none_of(known.begin(), known.end(), [&](const auto& kv) { return name == kv.Key; })) {
      throw Error("unknown CPU feature '" + name.str() + "' in \"" + cpu.features + "\" for " + out.triple +
                  Closest(name, known));
    }
    features.push_back(item);
  }
  out.feature_string = llvm::join(features, ",");

  // What the code may use: enabled features less pure tuning flags (those some CPU
  // tunes for and none lists as an instruction-set feature).
  llvm::FeatureBitset isa;
  llvm::FeatureBitset tuning;
  for (const auto& processor : tables->getAllProcessorDescriptions()) {
    isa |= processor.Implies.getAsBitset();
    tuning |= processor.TuneImplies.getAsBitset();
  }
  const std::unique_ptr<llvm::MCSubtargetInfo> subtarget(
      target.createMCSubtargetInfo(out.triple, out.cpu, out.feature_string));
  for (const auto& feature : subtarget->getEnabledProcessorFeatures()) {
    if (tuning.test(feature.Value) && !isa.test(feature.Value)) continue;
    out.features.emplace_back(feature.Key);
  }
  std::sort(out.features.begin(), out.features.end());
  return out;
}

std::string EmitLLVMIR(const std::vector<kir::Kernel>& kernels, const CpuTarget& target) {
  const Compilation c = Compile(kernels, target);
  std::string text;
  llvm::raw_string_ostream out(text);
  c.module->print(out, nullptr);
  return out.str();
}

std::string EmitAssembly(const std::vector<kir::Kernel>& kernels, const CpuTarget& target) {
  Compilation c = Compile(kernels, target);
  return EmitFile(c, llvm::CodeGenFileType::AssemblyFile);
}

std::unique_ptr<CodeModule> JitCompile(const std::vector<kir::Kernel>& kernels, const CpuTarget& target) {
  Compilation c = Compile(kernels, target);
  llvm::orc::JITTargetMachineBuilder machine{llvm::Triple(c.target.triple)};
  machine.setCPU(c.target.cpu)
      .setFeatures(c.target.feature_string)
      .setCodeGenOptLevel(CodegenLevel(c.opt_level))
      .setRelocationModel(llvm::Reloc::PIC_)
      .setCodeModel(llvm::CodeModel::Small);
  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(machine)).create();
  if (!jit) throw Error("cannot start the LLVM JIT: " + llvm::toString(jit.takeError()));
  DefineLibm(**jit);
  if (c.libmvec) {
    auto vector_math =
        llvm::orc::DynamicLibrarySearchGenerator::Load(kLibmvec, (*jit)->getDataLayout().getGlobalPrefix());
    if (!vector_math)
      throw Error(std::string("the JIT cannot open ") + kLibmvec + ": " + llvm::toString(vector_math.takeError()));
    (*jit)->getMainJITDylib().addGenerator(std::move(*vector_math));
  }
  llvm::orc::ThreadSafeModule module(std::move(c.module), llvm::orc::ThreadSafeContext(std::move(c.context)));
  if (auto error = (*jit)->addIRModule(std::move(module))) {
    throw Error("the JIT rejected the kernels: " + llvm::toString(std::move(error)));
  }
  // Looking every kernel up compiles them all now, on this thread; afterwards the module
  // is read-only.
  std::unordered_map<std::string, JitModule::Entry> functions;
  for (const auto& kernel : kernels) {
    const std::string symbol = KernelSymbolName(kernel.name);
    auto address = (*jit)->lookup(symbol);
    if (!address) {
      throw Error("the JIT cannot compile kernel '" + kernel.name + "': " + llvm::toString(address.takeError()));
    }
    auto record = (*jit)->lookup(symbol + kAbiRecordSuffix);
    if (!record) {
      throw Error("the JIT has no ABI record for kernel '" + kernel.name + "': " + llvm::toString(record.takeError()));
    }
    functions[kernel.name] = {address->toPtr<KilnKernelFn>(), record->toPtr<const int64_t*>()};
  }
  c.diagnostics->Check("compiling in the JIT");
  return std::make_unique<JitModule>(std::move(c.diagnostics), std::move(*jit), std::move(functions));
}

std::string CompileSharedObject(const std::vector<kir::Kernel>& kernels, const CpuTarget& target) {
  // Kernels are independent: they are optimized and compiled in several modules at once,
  // one thread (and LLVM context) each, dealt out in turn, and linked together.
  InitializeLlvm();
  const size_t parts = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, std::max<size_t>(1, kernels.size()));
  std::vector<std::vector<kir::Kernel>> shares(std::min<size_t>(parts, kMaxCompileThreads));
  for (size_t k = 0; k < kernels.size(); ++k) shares[k % shares.size()].push_back(kernels[k]);
  std::vector<std::string> objects(shares.size());
  std::vector<std::exception_ptr> errors(shares.size());
  bool libmvec = false;
  const auto compile = [&](size_t i) {
    try {
      Compilation c = Compile(shares[i], target);
      objects[i] = EmitFile(c, llvm::CodeGenFileType::ObjectFile);
      if (i == 0) libmvec = c.libmvec;
    } catch (...) {
      errors[i] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < shares.size(); ++i) threads.emplace_back(compile, i);
  compile(0);
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  return LinkSharedObject(objects, libmvec);
}

}  // namespace kiln
