// Host view of the device-side launch parameters: the very header the generated kernel
// includes (templates/flashjit/fwd_params.cuh), so the layouts cannot drift apart.
#pragma once

#include "flashjit/fwd_params.cuh"
#include "flashjit/fwd_tma_params.cuh"
