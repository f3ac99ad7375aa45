// eliminate-dead-code: drops nodes that no output depends on. Inputs and weights always stay,
// so the model's interface (the safetensors names it reads) does not change with optimization.
//
//   before                                    after
//   %0 = input {name="x"} : f32[T]            %0 = input {name="x"} : f32[T]
//   %1 = weight {name="w"} : f32[T]           %1 = weight {name="w"} : f32[T]
//   %2 = exp %1 : f32[T]                      %2 = neg %0 : f32[T]
//   %3 = neg %0 : f32[T]                      output "y" = %2
//   output "y" = %3
//
// Needs: nothing. Keeps: relative order of surviving nodes (ids are renumbered).
import { isInterfaceNode, removeDeadNodes } from '../graph/rewrite.js';
import type { GraphPass } from './pass.js';

export const eliminateDeadCode: GraphPass = {
  name: 'eliminate-dead-code',
  summary: 'remove nodes no output depends on (inputs and weights stay)',
  run: (g) => removeDeadNodes(g, isInterfaceNode),
};
