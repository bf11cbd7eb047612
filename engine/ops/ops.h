/* The op library: every GPU op that training and inference are made of, each with its forward and
 * backward side by side and a plain C reference (`_ref`) that the tests hold the GPU to.
 *
 * Conventions (shared by every op header included below):
 * - Ops record into a vklm_cmd; nothing runs until the command buffer is submitted.
 * - Argument order: outputs, saved-for-backward, inputs, weights, then dimensions. A shape comment
 *   such as (B,T,C) is given for every tensor argument; buffers hold fp32 unless said otherwise.
 * - Gradient rule: parameter gradients ACCUMULATE (+=), activation gradients OVERWRITE (=),
 *   except the residual stream, whose gradient accumulates.
 * - Buffers come from an arena and are aligned; sizes need not be multiples of the workgroup.
 * - Workgroup and tile sizes are chosen from the device's limits (vklm_caps), never assumed. */
#ifndef VKLM_OPS_H
#define VKLM_OPS_H

#include "fill.h"
#include "norm.h"
#include "activation.h"
#include "softmax.h"
#include "crossentropy.h"
#include "embedding.h"
#include "optim.h"
#include "attention.h"
#include "rope.h"
#include "matmul.h"
#include "elementwise.h"
#include "quant.h"
#include "tensor.h"
#include "kvcache.h"
#include "rl.h"

#endif
