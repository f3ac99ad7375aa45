// WebGPU flag values (spec constants), spelled here so the runtime does not depend on the
// GPUBufferUsage/GPUShaderStage globals, which Node only has after `webgpu` is loaded.
export const usage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80, QUERY_RESOLVE: 0x200 } as const;
export const stageCompute = 0x4;
export const mapModeRead = 0x1;
