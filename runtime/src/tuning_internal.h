// Internal: pieces of the tuner shared by forward() and autotune().
#pragma once

#include <cuda.h>

#include "flashjit/tuning.h"

namespace flashjit::detail {

// The device's identity for tuning keys, queried once per device.
DeviceInfo device_info(CUdevice dev);

}  // namespace flashjit::detail
