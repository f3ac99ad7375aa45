// The WebGPU runtime's public surface, for the CLI (`tfc run --target webgpu`), generated host
// glue and browser pages: acquire a device, create a session from a Plan, load weights, run.
export { acquireDevice, hasWebGpu, isLavapipe, NoWebGpuError, wantedFeatures } from './device.js';
export type { AcquiredDevice, AcquireOptions, AdapterSummary } from './device.js';
export { createSession, pipelineCreations } from './session.js';
export type * from './session-types.js';
export { RuntimeError } from './errors.js';
export { assignTemps, planTempBytes } from './memory.js';
export type { TempAssignment, TempRequest } from './memory.js';
export { targetLimitsOf } from './target.js';
export type { RuntimeErrorKind } from './errors.js';
export { storageBytes, paddedBytes, f16Bits, bf16Bits } from './convert.js';
export { checkTokens, createLoadedModel, parseSafetensors, readWeights, readWeightSource, sampleToken, seededRandom } from './host.js';
export type { CreateModelOptions, ForwardInputs, GenerateOptions, GenerateResult, LoadedModel, LoadProgress, ModelSpec, StopReason, WeightSource } from './host.js';
export { checkConfig, directoryReader, filesReader, folderReader, openCheckpoint, urlReader } from './checkpoint.js';
export type { Checkpoint, CheckpointReader, CompiledConfig } from './checkpoint.js';
export { loadTokenizer, tokenizerFromBpeFiles, tokenizerFromChars, tokenizerFromJson, TokenizerError } from './tokenizer.js';
export type { TextTokenizer, TokenStream } from './tokenizer.js';
export type { Plan } from '../kernel/plan/plan.js';
export { SlotCache, argmaxRow, greedyDecode, speculativeDecode } from './speculative.js';
export type { SlotModel, SpeculativeResult } from './speculative.js';
export { PageAllocator } from './pages.js';
export type { PageTables } from './pages.js';
export { generatePaged, pagedGeometry } from './paged.js';
export { PagedPools } from './paged-pools.js';
export type { PagedRow } from './paged-pools.js';
export type { PagedGenerateOptions, PagedGeometry, PagedModel, PagedRequest, PagedResult, PagedSequenceResult, PagedStep } from './paged.js';
// Training (issue 17): the Trainer and its WebGPU backend (weights and AdamW moments stay on the
// GPU), the generated module's `createTrainer` runtime, and tfc train's windows and schedule.
export { Trainer, planStateNames, webgpuTrainBackend } from './train.js';
export type { TrainBackend, TrainerOptions, TrainStepResult } from './train.js';
export { createLoadedTrainer, textBatches } from './fine-tune.js';
export type { LoadedTrainer, TrainBatch, TrainerCreateOptions, TrainerWeights, TrainSpec, TrainStepInfo } from './fine-tune.js';
export { adamNames, defaultAdamW } from '../train/adamw.js';
export type { AdamWOptions } from '../train/adamw.js';
export { batchOffsets, learningRate, windows } from '../train/data.js';
